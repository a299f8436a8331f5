"""The main job after the stack is up: publish the example config, run a worker, replay the trace, report."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bus.admin import ensure_topics
from bus.producer import UsageProducer
from bus.topics import Topics
from retries.policy import Retry
from schemas.budget_file import parse_budget_file
from schemas.config_records import ConfigState, file_records, prices_overrides_record
from schemas.money import format_usd
from schemas.settings import Settings
from sinks import queries
from sinks.usage_store import UsageStore
from workloads.generators import DEFAULT_ORGS, trace_events

__all__ = ["run_demo"]


def _wait_for_tables(store: UsageStore, worker: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """The rows stored so far, once the worker has made the tables; None when it did not in time."""
    patience = Retry(
        base_s=0.5, max_s=0.5, attempts=max(1, int(timeout_s / 0.5)), stop=lambda: worker.poll() is not None
    )
    try:
        return patience.call(store.count_usage)
    except Exception:  # noqa: BLE001 - the worker creates the tables as it starts
        return None


def _wait_for_rows(store: UsageStore, worker: subprocess.Popen[bytes], target: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while store.count_usage() < target:
        if time.monotonic() > deadline or worker.poll() is not None:
            return False
        time.sleep(0.25)
    return True


def _report(settings: Settings, store: UsageStore, topics: Topics) -> None:
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month_end = (month_start + timedelta(days=32)).replace(day=1)
    print(f"\n5/5 spend this month (UTC), from ClickHouse {store.database}.usage_hourly:")
    for org in DEFAULT_ORGS:
        for dimension, title in (("department_id", "department"), ("model", "model")):
            rows = store.query(*queries.spend_by(store.database, dimension, org.org_id, month_start, month_end))
            total = sum(int(r[-1]) for r in rows)
            print(f"\n  {org.org_id} by {title} (total {format_usd(total)})")
            for row in rows:
                print(f"    {row[0]:<30} {int(row[1]):>8,} requests {format_usd(int(row[-1])):>14}")
    ch = settings.clickhouse
    print(f"""
Where to look next:
  budgets and live caps   spendstream budgets list; spendstream decision serve (GET /v1/spend/...)
  ClickHouse              http://{ch.host}:{ch.port} with clickhouse-connect or curl, e.g.
                          SELECT * FROM {ch.database}.usage_daily ORDER BY bucket DESC LIMIT 10
  forecasts and spikes    SELECT * FROM {ch.database}.forecasts ORDER BY at DESC LIMIT 10 (and .anomalies);
                          the worker projects every {settings.insights.forecast_every_s:.0f} s and scores each minute
  alerts raised           topic {topics.alerts}, deliveries in {ch.database}.alert_history
  dead letters            topic {topics.dlq}
  dashboards              docker-compose.yml provisions Grafana with dashboards/grafana/dashboards/*.json
  keep consuming          spendstream worker   (Prometheus metrics on :{settings.metrics_port}/metrics)
  more traffic            spendstream replay trace --now --count 50000
  stop the stack          spendstream stack down""")


def run_demo(
    settings: Settings, count: int, trace: Path, examples: Path, publish: Callable[[Settings, list[Any]], None]
) -> int:
    topics = Topics(settings.kafka.topic_prefix)
    ensure_topics(settings.kafka.bootstrap, topics)
    print(f"\n2/5 publishing prices and budgets from {examples} to {topics.config}")
    budgets = parse_budget_file((examples / "budgets.yaml").read_text())
    publish(
        settings,
        [
            prices_overrides_record((examples / "prices.yaml").read_text()),
            *file_records(budgets, ConfigState())[0],
        ],
    )
    log_path = settings.stack.home / "worker.log"
    print(f"3/5 starting the stream worker (log: {log_path})")
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "admin.cli", "worker", "--metrics-loopback"], stdout=log, stderr=subprocess.STDOUT
        )
    ch = settings.clickhouse
    store = UsageStore.of(ch)
    try:
        before = _wait_for_tables(store, worker, 90)
        if before is None:
            print(f"error: the worker did not start; see {log_path}", file=sys.stderr)
            return 1
        time.sleep(3)  # the worker joins its consumer group
        print(f"4/5 replaying {count:,} requests of the LLM trace in {trace.name}, shifted to the last 20 minutes")
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
        events = trace_events(trace.read_text(), count, start=start, speedup=4.0, prefix=f"demo{int(time.time())}")
        UsageProducer(settings.kafka.bootstrap, topics.usage, compression=settings.kafka.compression).replay(
            events, count
        )
        if not _wait_for_rows(store, worker, before + count, 300):
            print(f"error: not every event arrived in ClickHouse; see {log_path}", file=sys.stderr)
            return 1
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
    _report(settings, store, topics)
    return 0
