"""How long the monthly usage summary takes on a large org: 10M usage events over 90 days.

Seeds ClickHouse like bench/console.py (a database of its own), publishes the example budgets, then
generates acme's summary of the last complete month, three times per format, reading ClickHouse each
time. Writes bench/results/reports.json:

- ``monthly_pdf_s`` / ``monthly_xlsx_s``: the best of three, reading included;
- ``monthly_read_s``: the reading alone (the queries), the baseline of the same run;
- ``pages``: the PDF's page count.

- ``csv_rows_per_s`` / ``csv_peak_rss_mib``: a 1M-row page of the FOCUS export streamed through the
  console's export API (``GET /api/v1/export/focus?limit=1000000``, as a finance system pulls it: its
  count, then ClickHouse's CSV relayed as it comes), read by an HTTP client to the last byte; the peak
  memory is the console process's own (VmHWM, start-up included; ``console_idle_rss_mib`` is after
  start-up); ``clickhouse_csv_rows_per_s``: the same query's rows dumped by ClickHouse itself
  (``FORMAT CSVWithNames``) and read to the end, the baseline of the same run.

Targets: each monthly report <= 10 s; the CSV export >= 0.5x ClickHouse's own dump, at most 200 MiB.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import pypdf

from bench._common import write_result
from bench.console import EXAMPLES, seed
from bus.config_topic import config_state, publish_config
from bus.topics import Topics
from reports.data import monthly_data
from reports.monthly import monthly_report
from reports.render_pdf import render_pdf
from reports.render_xlsx import render_xlsx
from schemas.budget_file import parse_budget_file
from schemas.config_records import ConfigState, file_records
from schemas.focus_export import EXPORT_START
from schemas.settings import Settings
from sinks.focus import CHUNK_BYTES, OUTPUT_SETTINGS, focus_query, page_end
from sinks.usage_store import UsageStore
from stack import manager

ROUNDS = 3
CSV_ROWS = 1_000_000
PASSWORD = "bench password, long enough"


def _rss_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def api_export(settings: Settings, folder: Path) -> dict[str, float]:
    """Start a console on the bench database, sign a finance user in, and pull a 1M-row page twice."""
    port = _free_port()
    env = {
        **os.environ,
        "SPENDSTREAM_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "SPENDSTREAM_CLICKHOUSE__DATABASE": settings.clickhouse.database,
        "SPENDSTREAM_CONSOLE__PORT": str(port),
        "SPENDSTREAM_CONSOLE__DATABASE": str(folder / "console.db"),
        "SPENDSTREAM_CONSOLE__EXPORT_SETTLE_S": "0",
        "SPENDSTREAM_CONSOLE_PASSWORD": PASSWORD,
    }
    command = [sys.executable, "-m", "admin.cli", "console"]
    subprocess.run([*command, "create-user", "--org", "acme", "--username", "fin", "--role", "finance"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    log = (folder / "console.log").open("wb")
    server = subprocess.Popen([*command, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "console.log").read_text())
            time.sleep(0.2)
        client = httpx.Client(base_url=url, timeout=600)
        csrf = client.get("/login").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        client.post("/login", data={"username": "fin", "password": PASSWORD, "csrf": csrf})
        idle = _rss_mib(server.pid, "VmRSS")
        best, rows, size = float("inf"), 0, 0
        for _ in range(2):
            began, size = time.perf_counter(), 0
            with client.stream("GET", "/api/v1/export/focus", params={"limit": str(CSV_ROWS)}) as answer:
                answer.raise_for_status()
                rows = int(answer.headers["X-Row-Count"])
                for chunk in answer.iter_raw():
                    size += len(chunk)
            best = min(best, time.perf_counter() - began)
        return {"rows": rows, "seconds": best, "bytes": size, "peak": _rss_mib(server.pid, "VmHWM"), "idle": idle}
    finally:
        server.terminate()
        server.wait(30)


def clickhouse_dump(store: UsageStore, rows: int) -> float:
    """Seconds for ClickHouse to dump the same page (the export's own query) as CSV, read to the end."""
    end = page_end(store, "acme", EXPORT_START, rows, 0).end
    parameters = {"org": "acme", "tz": "Europe/Berlin", "after_at": "1970-01-01 00:00:00.000", "after_id": "",
                  "end_at": end.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], "end_id": end.event_id}  # fmt: skip
    began = time.perf_counter()
    sql = focus_query(store.database, "1.2", True, [])
    stream = store.client.raw_stream(sql, parameters, settings=OUTPUT_SETTINGS, fmt="CSVWithNames")
    while stream.read(CHUNK_BYTES):
        pass
    return time.perf_counter() - began


def main() -> None:
    tag = uuid.uuid4().hex[:8]
    base = Settings()
    manager.up(base.stack)
    settings = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"topic_prefix": f"bench{tag}."}),
            "clickhouse": base.clickhouse.model_copy(update={"database": f"bench_reports_{tag}"}),
        }
    )
    store = UsageStore.of(settings.clickhouse)
    now = datetime.now(UTC).replace(microsecond=0)
    month = (now.date().replace(day=1) - timedelta(days=1)).replace(day=1)
    try:
        seed(store, now)
        topics = Topics(settings.kafka.topic_prefix)
        budgets = parse_budget_file((EXAMPLES / "budgets.yaml").read_text())
        publish_config(settings.kafka.bootstrap, topics, file_records(budgets, ConfigState())[0])
        state = config_state(settings.kafka.bootstrap, topics.config)
        reads, pdfs, xlsxs = [], [], []
        pages = 0
        for _ in range(ROUNDS):
            began = time.perf_counter()
            data = monthly_data(store, state, "acme", month, now)
            reads.append(time.perf_counter() - began)
            report = monthly_report(data)
            pdf = render_pdf(report)
            pdfs.append(time.perf_counter() - began)
            began = time.perf_counter()
            render_xlsx(monthly_report(monthly_data(store, state, "acme", month, now)))
            xlsxs.append(time.perf_counter() - began)
            pages = len(pypdf.PdfReader(io.BytesIO(pdf)).pages)
        events = int(store.query(f"SELECT count() FROM {store.database}.usage_events")[0][0])
        with tempfile.TemporaryDirectory() as folder:
            exported = api_export(settings, Path(folder))
        dump_s = min(clickhouse_dump(store, int(exported["rows"])) for _ in range(2))
    finally:
        store.client.command(f"DROP DATABASE IF EXISTS {store.database}")
    write_result(
        "reports",
        {
            "events": events,
            "month": f"{month:%Y-%m}",
            "monthly_pdf_s": round(min(pdfs), 2),
            "monthly_xlsx_s": round(min(xlsxs), 2),
            "monthly_read_s": round(min(reads), 2),
            "pages": pages,
            "rounds": ROUNDS,
            "csv_rows": exported["rows"],
            "csv_rows_per_s": round(exported["rows"] / exported["seconds"]),
            "csv_bytes": exported["bytes"],
            "csv_peak_rss_mib": round(exported["peak"], 1),
            "console_idle_rss_mib": round(exported["idle"], 1),
            "clickhouse_csv_rows_per_s": round(exported["rows"] / dump_s),
            "csv_over_clickhouse": round(dump_s / exported["seconds"], 3),
            "targets": {"monthly_pdf_s": 10, "monthly_xlsx_s": 10, "csv_over_clickhouse": 0.5, "csv_peak_rss_mib": 200},
        },
    )


if __name__ == "__main__":
    main()
