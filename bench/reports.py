"""How long the monthly usage summary takes on a large org: 10M usage events over 90 days.

Seeds ClickHouse like bench/console.py (a database of its own), publishes the example budgets, then
generates acme's summary of the last complete month, three times per format, reading ClickHouse each
time. Writes bench/results/reports.json:

- ``monthly_pdf_s`` / ``monthly_xlsx_s``: the best of three, reading included;
- ``monthly_read_s``: the reading alone (the queries), the baseline of the same run;
- ``pages``: the PDF's page count.

- ``csv_rows_per_s`` / ``csv_peak_rss_mib``: 1M usage rows streamed from ClickHouse through the
  reports' CSV writer (``reports.render_csv.csv_lines``: exact USD and nano-USD, the formula guard), in
  a process of its own so that its peak memory is its own; ``clickhouse_csv_rows_per_s``: the same rows
  dumped by ClickHouse itself (``FORMAT CSVWithNames``), the baseline of the same run.

Targets: each monthly report <= 10 s; the CSV export >= 0.5x ClickHouse's own dump, at most 200 MiB.
(The export API that will serve it is not built yet: this measures the writer it will stream through.)
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pypdf

from bench._common import write_result
from bench.console import EXAMPLES, seed
from bus.admin import config_state
from bus.config_publisher import publish_config
from bus.topics import Topics
from reports.data import monthly_data
from reports.monthly import monthly_report
from reports.render_pdf import render_pdf
from reports.render_xlsx import render_xlsx
from schemas.budget_file import parse_budget_file
from schemas.config_records import ConfigState, file_records
from schemas.settings import Settings
from sinks.usage_store import UsageStore
from stack import manager

ROUNDS = 3
CSV_ROWS = 1_000_000
EXPORT_SQL = (
    "SELECT event_id, occurred_at, org_id, department_id, user_id, feature, provider, model, input_tokens, "
    "output_tokens, cost_nanos FROM {db}.usage_events ORDER BY org_id, occurred_at, event_id LIMIT {rows}"
)


def export_csv(database: str) -> None:
    """The child process: stream the rows through the CSV writer, print rows, seconds, peak RSS."""
    import json  # noqa: PLC0415
    import resource  # noqa: PLC0415

    from reports.model import Column, Kind  # noqa: PLC0415
    from reports.render_csv import csv_lines  # noqa: PLC0415

    columns = (
        *(
            Column(n, n)
            for n in ("event_id", "occurred_at", "org", "department", "user", "feature", "provider", "model")
        ),
        Column("input_tokens", "input_tokens", Kind.INT),
        Column("output_tokens", "output_tokens", Kind.INT),
        Column("cost", "cost", Kind.USD),
    )
    store = UsageStore.of(Settings().clickhouse.model_copy(update={"database": database}))
    began, rows, size = time.perf_counter(), 0, 0

    def stream() -> Any:
        nonlocal rows
        with store.client.query_row_block_stream(EXPORT_SQL.format(db=database, rows=CSV_ROWS)) as blocks:
            for block in blocks:
                for row in block:
                    rows += 1
                    yield (*row[:1], row[1].isoformat(), *row[2:])

    for line in csv_lines(columns, stream()):
        size += len(line)
    took = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"rows": rows, "seconds": took, "bytes": size, "peak_rss_mib": peak}))


def clickhouse_dump(store: UsageStore) -> float:
    """Seconds for ClickHouse to dump the same rows as CSV, read to the end."""
    began = time.perf_counter()
    stream = store.client.raw_stream(EXPORT_SQL.format(db=store.database, rows=CSV_ROWS), fmt="CSVWithNames")
    for _ in stream:
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
        child = subprocess.run(
            [sys.executable, __file__, "--export-csv", store.database], capture_output=True, text=True, check=True
        )
        exported = json.loads(child.stdout.strip().splitlines()[-1])
        dump_s = min(clickhouse_dump(store) for _ in range(2))
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
            "csv_peak_rss_mib": round(exported["peak_rss_mib"], 1),
            "clickhouse_csv_rows_per_s": round(CSV_ROWS / dump_s),
            "csv_over_clickhouse": round(exported["rows"] / exported["seconds"] / (CSV_ROWS / dump_s), 3),
            "targets": {"monthly_pdf_s": 10, "monthly_xlsx_s": 10, "csv_over_clickhouse": 0.5, "csv_peak_rss_mib": 200},
        },
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--export-csv":
        export_csv(sys.argv[2])
    else:
        main()
