"""The main job after the stack is up: every feature on the local stack, fed by a sample workload.

1. publish the example prices and budgets, and a demo alert channel: email to a local inbox;
2. start the inbox and a stream worker (forecasting every few seconds, scoring spikes in 2 s buckets);
3. replay 60 days of synthetic history (weekdays busier than weekends, one day of heavy use) and then
   the LLM trace as today's traffic;
4. send a minute of live traffic with one burst in it, until the worker has made forecasts, flagged
   the spike and delivered alerts to the inbox;
5. write last month's summary, run a saved monthly template once as the report scheduler would (its
   files emailed to the inbox), start the console with a demo sign-in, leave it running, and say where
   to look.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from admin.console_cli import start_console
from admin.environment import warn_refused
from admin.inbox import Inbox
from bus.config_topic import config_state
from bus.topic_admin import ensure_topics
from bus.topics import Topics
from bus.usage_producer import UsageProducer
from reports.data import monthly_data
from reports.files import Format, write_report
from reports.monthly import monthly_report
from retries.policy import Retry
from schemas.budget_file import parse_budget_file
from schemas.config_records import ConfigState, channel_record, file_records, prices_overrides_record, routing_record
from schemas.events import UsageEvent
from schemas.money import format_usd
from schemas.settings import Settings
from sinks import queries
from sinks.usage_store import UsageStore
from workloads.generators import DEFAULT_ORGS, synthetic, trace_events

__all__ = ["DEMO_PASSWORD", "DEMO_USER", "run_demo"]

DEMO_USER = "admin"
DEMO_PASSWORD = "spendstream-demo"  # noqa: S105 - the local demo's sign-in, printed for the user
HISTORY_DAYS = 60
HISTORY_PER_DAY = 1_200
SPIKE_DAY = 45  # of the 60: a day of heavy use in the history
HISTORY = "demo-history"  # the history's event ids start with it

Publish = Callable[[Settings, list[Any]], None]


def _wait_for_tables(store: UsageStore, worker: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """The rows stored so far, once the worker has made the tables; None when it did not in time."""
    patience = Retry(
        base_s=0.5, max_s=0.5, attempts=max(1, int(timeout_s / 0.5)), stop=lambda: worker.poll() is not None
    )
    try:
        return patience.call(store.count_usage)
    except Exception:  # noqa: BLE001 - the worker creates the tables as it starts
        return None


def _wait(what: Callable[[], bool], worker: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not what():
        if time.monotonic() > deadline or worker.poll() is not None:
            return False
        time.sleep(0.5)
    return True


def _count(store: UsageStore, table: str, where: str = "1") -> int:
    try:  # fixed names and conditions only
        return int(store.query(f"SELECT count() FROM {store.database}.{table} WHERE {where}")[0][0])
    except Exception:  # noqa: BLE001 - the worker creates its tables as it goes
        return 0


def _live(producer: UsageProducer, seconds: float, burst_at: float) -> None:
    """Steady traffic of acme's engineers occurring now, with one user's burst of long prompts at ``burst_at``."""
    rng = random.Random(3)  # noqa: S311 - a repeatable workload
    began, n = time.monotonic(), 0
    burst_sent = False
    while time.monotonic() - began < seconds:
        for _ in range(4):
            n += 1
            producer.send(
                UsageEvent(
                    event_id=f"live-{int(began)}-{n}",
                    occurred_at=datetime.now(UTC),
                    org_id="acme",
                    department_id="eng",
                    user_id=f"eng-user{rng.randrange(25):03d}",
                    feature=rng.choice(["chat", "code-review", "search"]),
                    provider="openai",
                    model="gpt-4o-mini",
                    input_tokens=rng.randrange(500, 3000),
                    output_tokens=rng.randrange(100, 600),
                )
            )
        if not burst_sent and time.monotonic() - began >= burst_at:
            for i in range(60):  # a runaway agent: long prompts to the dearest model, in two seconds
                producer.send(
                    UsageEvent(
                        event_id=f"live-{int(began)}-burst-{i}",
                        occurred_at=datetime.now(UTC),
                        org_id="acme",
                        department_id="eng",
                        user_id="eng-user007",
                        feature="agent",
                        provider="anthropic",
                        model="claude-3-5-sonnet-20240620",
                        input_tokens=150_000,
                        output_tokens=4_000,
                    )
                )
            burst_sent = True
        producer.producer.poll(0)
        time.sleep(0.2)
    producer.flush()


def _report(settings: Settings, store: UsageStore, inbox: Inbox, url: str, took_s: float) -> None:
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month_end = (month_start + timedelta(days=32)).replace(day=1)
    print(f"\nspend this month (UTC), from ClickHouse {store.database}:")
    for org in DEFAULT_ORGS:
        rows = store.query(*queries.spend_by(store.database, "department_id", org.org_id, month_start, month_end))
        cost = queries.SPEND_BY_COST
        total = sum(int(r[cost]) for r in rows)
        parts = ", ".join(f"{r[0]} {format_usd(int(r[cost]))}" for r in rows)
        print(f"  {org.org_id:<8} {format_usd(total):>12}   {parts}")
    print(
        f"\nforecasts {_count(store, 'forecasts'):,} · spikes {_count(store, 'anomalies'):,} · "
        f"alert deliveries {_count(store, 'alert_history'):,} · messages in the demo inbox {inbox.received:,}"
    )
    for subject in inbox.subjects(3):
        print(f"  mail: {subject}")
    ch = settings.clickhouse
    print(f"""
Done in {took_s:.0f} s. Look at it in the console (left running):

  {url}/billing        sign in as {DEMO_USER} / {DEMO_PASSWORD}  (owner of org acme)

  Overview, Cost analysis, Usage patterns, Forecasts, Budget Settings, Alerts and Access;
  the admin API is under {url}/api/v1 (OpenAPI: {url}/api/v1/openapi.json).

Also:
  the demo inbox          {inbox.folder} (one .eml per message: alerts and the scheduled report)
  ClickHouse              http://{ch.host}:{ch.port}, e.g. SELECT * FROM {ch.database}.usage_daily LIMIT 10
  keep consuming          spendstream worker   (Prometheus metrics on :{settings.metrics_port}/metrics)
  more traffic            spendstream replay trace --now --count 50000
  stop the console        spendstream console stop
  stop the stack          spendstream stack down""")


def _publish_config(settings: Settings, topics: Topics, examples: Path, publish: Publish) -> None:
    print(f"\n2/6 publishing prices, budgets and a demo alert channel from {examples} to {topics.config}")
    budgets = parse_budget_file((examples / "budgets.yaml").read_text())
    records = [
        prices_overrides_record((examples / "prices.yaml").read_text()),
        *file_records(budgets, ConfigState())[0],
    ]
    for org in budgets.orgs:  # every alert of the demo goes to the local inbox
        records.append(channel_record(org, "demo-inbox", {"type": "email", "to": [f"finance@{org}.example"]}))
        records.append(routing_record(org, {"default": ["demo-inbox"]}))
    publish(settings, records)


def _worker_env(inbox: Inbox, console_url: str) -> dict[str, str]:
    """The worker's settings for the demo: mail to the inbox, links to the console, insights every few seconds."""
    return {
        **os.environ,
        "SPENDSTREAM_ALERTS__SMTP_HOST": "127.0.0.1",
        "SPENDSTREAM_ALERTS__SMTP_PORT": str(inbox.port),
        "SPENDSTREAM_ALERTS__SMTP_SECURITY": "none",
        "SPENDSTREAM_ALERTS__CONSOLE_URL": console_url,
        "SPENDSTREAM_INSIGHTS__FORECAST_EVERY_S": "5",
        "SPENDSTREAM_INSIGHTS__SPIKE_BUCKET_S": "2",
        "SPENDSTREAM_INSIGHTS__SPIKE_LAG_S": "1",
        "SPENDSTREAM_INSIGHTS__SPIKE_WARMUP": "6",
        "SPENDSTREAM_INSIGHTS__SPIKE_MIN_USD": "1.00",  # 2 s buckets: only a real burst, not one dear request
        "SPENDSTREAM_INSIGHTS__SPIKE_HOURLY": "false",
    }


def _feed(
    settings: Settings, topics: Topics, store: UsageStore, worker: subprocess.Popen[bytes], count: int, trace: Path
) -> bool:
    """History, then today's trace, until ClickHouse holds all of it; then the live minute."""
    before = _wait_for_tables(store, worker, 90)
    if before is None:
        return False
    time.sleep(3)  # the worker joins its consumer group
    producer = UsageProducer(settings.kafka.bootstrap, topics.usage, compression=settings.kafka.compression)
    first_day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=HISTORY_DAYS)
    run = int(time.time())
    history: list[UsageEvent] = []
    if _count(store, "usage_events", f"event_id LIKE '{HISTORY}-%'") == 0:  # once: a second run adds no history
        history = list(synthetic(HISTORY_DAYS, HISTORY_PER_DAY, first_day, spike_days=(SPIKE_DAY,), prefix=HISTORY))
        print(f"4/6 replaying {HISTORY_DAYS} days of history ({len(history):,} requests)")
        producer.replay(history, len(history))
    else:
        print(f"4/6 the {HISTORY_DAYS} days of history are there from an earlier run")
    print(f"    and {count:,} requests of the LLM trace in {trace.name} as the last 20 minutes")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    producer.replay(trace_events(trace.read_text(), count, start=start, speedup=4.0, prefix=f"demo{run}t"), count)
    if not _wait(lambda: store.count_usage() >= before + len(history) + count, worker, 300):
        return False
    print("5/6 live traffic for 40 s with one burst in it: waiting for forecasts, the spike and alerts")
    _live(producer, 40, burst_at=24)
    return True


def _summary(settings: Settings, store: UsageStore) -> Path:
    """acme's monthly summary of last month as PDF, in the stack's home."""
    now = datetime.now(UTC)
    month = (now.date().replace(day=1) - timedelta(days=1)).replace(day=1)
    state = config_state(settings.kafka.bootstrap, Topics(settings.kafka.topic_prefix).config, on_error=warn_refused)
    report = monthly_report(monthly_data(store, state, "acme", month, now))
    (path,) = write_report(report, [Format.PDF], settings.stack.home / "reports", progress=lambda line: None)
    return path


def _scheduled(settings: Settings, store: UsageStore, inbox: Inbox) -> str:
    """A saved template, due on the 1st of this month at 08:00, run by one poll of the report scheduler:
    its files go to the demo inbox as an email, as ``spendstream reports scheduler`` sends them."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from admin.report_scheduler import ReportScheduler  # noqa: PLC0415
    from alerting.senders import SmtpConfig, send_smtp  # noqa: PLC0415
    from bus.config_topic import ConfigCache  # noqa: PLC0415
    from enforcement.redis_clients import sync_redis  # noqa: PLC0415
    from schemas.config_records import template_record  # noqa: PLC0415
    from schemas.report_templates import parse_template  # noqa: PLC0415

    topics = Topics(settings.kafka.topic_prefix)
    saved = (datetime.now(UTC).replace(day=1) - timedelta(days=20)).isoformat()
    body = {"kind": "monthly", "formats": ["pdf", "xlsx"], "recipients": ["cfo@acme.example"],
            "schedule": "0 8 1 * *", "saved_at": saved}  # fmt: skip
    config = ConfigCache.of(settings.kafka.bootstrap, topics, max_age_s=0)
    if ("acme", "monthly-finance") not in config.state().reports:
        config.publish([template_record(parse_template("acme", "monthly-finance", body))])
    smtp = SmtpConfig("127.0.0.1", inbox.port, "none")
    scheduler = ReportScheduler(
        settings.reports, store, sync_redis(settings.redis), settings.redis.key_prefix,
        config.state,
        lambda message: send_smtp(smtp, message), registry=CollectorRegistry(),
    )  # fmt: skip
    ran = scheduler.poll()
    return f"ran {', '.join(ran)}" if ran else "ran before (each scheduled time runs once)"


def _insights_ready(store: UsageStore, inbox: Inbox) -> bool:
    return _count(store, "forecasts") > 0 and _count(store, "anomalies") > 0 and inbox.received > 0


def run_demo(settings: Settings, count: int, trace: Path, examples: Path, publish: Publish) -> int:
    began = time.monotonic()
    topics = Topics(settings.kafka.topic_prefix)
    ensure_topics(settings.kafka.bootstrap, topics)
    _publish_config(settings, topics, examples, publish)
    log_path = settings.stack.home / "worker.log"
    console_url = f"http://{settings.console.host}:{settings.console.port}"
    store = UsageStore.of(settings.clickhouse)
    with Inbox(settings.stack.home / "demo-inbox") as inbox:
        print(f"3/6 starting the stream worker (log: {log_path}) and a local inbox on :{inbox.port}")
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "admin.cli", "worker", "--metrics-loopback"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_worker_env(inbox, console_url),
            )
        try:
            if not _feed(settings, topics, store, worker, count, trace):
                print(f"error: not every event arrived in ClickHouse; see {log_path}", file=sys.stderr)
                return 1
            if not _wait(lambda: _insights_ready(store, inbox), worker, 60):
                print("warning: not every insight arrived in time; the console shows what there is", file=sys.stderr)
            time.sleep(2)  # the last deliveries reach alert_history
        finally:
            worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
        print("6/6 writing last month's summary of acme, and starting the console")
        summary = _summary(settings, store)
        scheduled = _scheduled(settings, store, inbox)
        url = start_console(settings, DEMO_USER, DEMO_PASSWORD, "acme")
        _report(settings, store, inbox, url, time.monotonic() - began)
        print(f"  last month's summary     {summary}  (spendstream reports generate --help)")
        print(f"  a scheduled report       monthly-finance {scheduled}, emailed to the demo inbox")
        print("                           (spendstream reports runs --org acme)")
        print(f"  the FOCUS export         {url}/api/v1/export/focus  (an API token with the finance role)")
    return 0
