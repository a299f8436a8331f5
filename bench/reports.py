"""How long the monthly usage summary takes on a large org: 10M usage events over 90 days.

Seeds ClickHouse like bench/console.py (a database of its own), publishes the example budgets, then
generates acme's summary of the last complete month, three times per format, reading ClickHouse each
time. Writes bench/results/reports.json:

- ``monthly_pdf_s`` / ``monthly_xlsx_s``: the best of three, reading included;
- ``monthly_read_s``: the reading alone (the queries), the baseline of the same run;
- ``pages``: the PDF's page count.

Target: each monthly report <= 10 s. (The 1M-row CSV export through the export API, against
ClickHouse's own CSV dump, comes with that API.)
"""

from __future__ import annotations

import io
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
            "targets": {"monthly_pdf_s": 10, "monthly_xlsx_s": 10},
        },
    )


if __name__ == "__main__":
    main()
