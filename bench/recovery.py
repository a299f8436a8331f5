"""How long hard caps are blind after Redis comes back empty, with 1M events of history to restore.

Seeds ClickHouse with 1,000,000 usage events of the current month (three orgs; one user far over a
monthly hard cap), starts a worker on a Redis of its own, then SIGKILLs that Redis, deletes its data and
starts it again. From the moment Redis answers again, a proxy asks every 10 ms to admit the capped user:
every answer until caps are enforced must be a denial. Writes bench/results/recovery.json:

- ``redis_restart_to_enforced_s``: Redis up (empty) until the capped user is denied by the cap itself;
- ``rebuild_caps_s`` / ``rebuild_s``: the worker's restore, until caps were enforced / until done;
- ``rebuild_events``: the month's events in ClickHouse the restore summed;
- ``admitted_over_cap_during_outage``: requests of the capped user admitted while Redis was down or
  empty (must be 0);
- baseline, in the same run: ``clickhouse_month_scan_s``, one scan summing the month's events (the
  least a restore from ClickHouse can take), and ``redis_start_s``.

Target: enforced again within 10 s for 1M events of history.
"""

from __future__ import annotations

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

from confluent_kafka import Producer

from bench._common import write_result
from bus.topic_admin import ensure_topics
from bus.topics import Topics
from enforcement.client import CapClient
from enforcement.decision import Outcome
from enforcement.keys import KeyLayout
from enforcement.subject import Subject
from schemas.budget_file import parse_budget_file
from schemas.config_records import ConfigState, file_records
from schemas.settings import Settings, StackSettings
from sinks.tables import USAGE_EVENTS
from sinks.usage_store import UsageStore
from stack import manager
from stack.services import RedisService

EVENTS = 1_000_000
CHUNK = 100_000
CAPPED = Subject("acme", "capped", "eng", "chat", "gpt-4o", "openai")
BUDGETS = """
budgets:
  - {org: acme, scope: user, id: capped, period: monthly, limit: "1.00", mode: hard}
  - {org: acme, scope: department, id: eng, period: daily, limit: "100000", mode: hard}
  - {org: globex, scope: org, period: monthly, limit: "100000", mode: soft}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(store: UsageStore, now: datetime) -> None:
    """1M events since the start of the month, each ingested a second after it occurred: what a restore
    must sum (the whole month) and remember (the last day's fingerprints)."""
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = (now - month).total_seconds() - 60
    orgs = (("acme", "eng"), ("acme", "sales"), ("globex", "ops"), ("initech", "eng"))
    store.migrate()
    for start in range(0, EVENTS, CHUNK):
        rows = []
        for i in range(start, min(EVENTS, start + CHUNK)):
            org, department = orgs[i % len(orgs)]
            user = "capped" if i % 1000 == 0 else f"{department}-user{i % 97:03d}"
            at = month + timedelta(seconds=span * i / EVENTS)
            rows.append(
                (
                    f"seed-{i:09d}",
                    at,
                    org,
                    department if org != "acme" or user != "capped" else "eng",
                    user,
                    "chat",
                    "openai",
                    "gpt-4o",
                    "",
                    1000,
                    200,
                    0,
                    0,
                    0,
                    4_500_000,
                    "catalogue",
                    "success",
                    None,
                    {},
                    "",
                    "",
                    i % 8,
                    i // 8,
                    at + timedelta(seconds=1),
                )
            )
        columns = [*USAGE_EVENTS.columns, "ingested_at"]  # ingested as if by the worker, a second after
        store.client.insert(f"{store.database}.{USAGE_EVENTS.name}", rows, column_names=columns)


def publish_budgets(settings: Settings) -> None:
    topics = Topics(settings.kafka.topic_prefix)
    ensure_topics(settings.kafka.bootstrap, topics)
    records = file_records(parse_budget_file(BUDGETS), ConfigState())[0]
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "acks": "all"})
    for record in records:
        producer.produce(topics.config, key=record.key.encode(), value=record.value)
    assert producer.flush(30) == 0


def main() -> None:
    base = Settings()
    manager.up(base.stack)
    tag = uuid.uuid4().hex[:8]
    home = Path(tempfile.mkdtemp(prefix="recovery-"))
    redis_port = free_port()
    own = StackSettings(home=home, cache=base.stack.cache, redis_port=redis_port)
    redis_service = RedisService(own)
    manager.up(own, ["redis"])
    env = {
        **os.environ,
        "SPENDSTREAM_REDIS__URL": f"redis://127.0.0.1:{redis_port}/0",
        "SPENDSTREAM_REDIS__KEY_PREFIX": f"rb{tag}",
        "SPENDSTREAM_KAFKA__TOPIC_PREFIX": f"rb{tag}.",
        "SPENDSTREAM_CLICKHOUSE__DATABASE": f"rb_{tag}",
        "SPENDSTREAM_INSIGHTS__ENABLED": "false",
    }
    settings = Settings.model_validate(
        {
            "redis": {"url": env["SPENDSTREAM_REDIS__URL"], "key_prefix": env["SPENDSTREAM_REDIS__KEY_PREFIX"]},
            "kafka": {"topic_prefix": env["SPENDSTREAM_KAFKA__TOPIC_PREFIX"]},
            "clickhouse": {"database": env["SPENDSTREAM_CLICKHOUSE__DATABASE"]},
        }
    )
    store = UsageStore.of(settings.clickhouse)
    now = datetime.now(UTC)
    began = time.perf_counter()
    seed(store, now)
    print(f"seeded {EVENTS:,} events in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    publish_budgets(settings)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    began = time.perf_counter()
    since = "{m:DateTime64(6, 'UTC')}"
    scan = f"SELECT count(), sum(cost_nanos) FROM {store.database}.usage_events WHERE occurred_at >= {since}"
    scanned = store.query(scan, {"m": month})
    scan_s = time.perf_counter() - began
    log = (home / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "admin.cli", "worker", "--metrics-port", str(free_port()), "--metrics-loopback"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    caps = CapClient.from_url(settings.redis.url, timeout_s=0.05, key_prefix=settings.redis.key_prefix, org_cache_s=0)
    layout = KeyLayout(settings.redis.key_prefix)

    def enforced() -> bool:
        decision = caps.reserve(CAPPED, f"probe-{uuid.uuid4().hex[:12]}", 1_000)
        return decision.outcome is Outcome.DENIED and "user/capped monthly hard cap" in decision.reason

    try:
        deadline = time.monotonic() + 300
        while not (caps.redis.hexists(layout.state(), "total_s") and enforced()):  # the start-up restore, done
            assert worker.poll() is None and time.monotonic() < deadline, "the worker did not restore at start"
            time.sleep(0.2)
        time.sleep(2)  # the worker consuming, idle
        pid = redis_service.proc.pid()
        assert pid is not None
        os.kill(pid, 9)
        while redis_service.proc.pid() is not None:
            time.sleep(0.01)
        admitted = 0
        for _ in range(50):  # half a second of requests while Redis is down
            admitted += caps.reserve(CAPPED, f"down-{uuid.uuid4().hex[:12]}", 1_000).allowed
            time.sleep(0.01)
        for leftover in ("appendonlydir", "dump.rdb"):
            path = redis_service.home / leftover
            subprocess.run(["rm", "-rf", str(path)], check=True)
        started = time.perf_counter()
        manager.up(own, ["redis"])
        back = time.perf_counter()
        while not enforced():
            admitted += caps.reserve(CAPPED, f"back-{uuid.uuid4().hex[:12]}", 1_000).allowed
            assert time.perf_counter() - back < 120, "caps were not enforced again within 120 s"
            time.sleep(0.01)
        to_enforced = time.perf_counter() - back
        deadline = time.monotonic() + 120
        marker: dict[bytes, bytes] = {}
        while time.monotonic() < deadline:
            marker = caps.redis.hgetall(layout.state())
            if b"total_s" in marker:
                break
            time.sleep(0.2)
        result = {
            "redis_restart_to_enforced_s": round(to_enforced, 3),
            "rebuild_caps_s": float(marker.get(b"caps_s", b"nan")),
            "rebuild_s": float(marker.get(b"total_s", b"nan")),
            "rebuild_events": int(marker.get(b"events", b"0")),
            "admitted_over_cap_during_outage": int(admitted),
            "target_enforced_s": 10.0,
            "baseline": {
                "clickhouse_month_scan_s": round(scan_s, 3),
                "clickhouse_month_events": int(scanned[0][0]),
                "redis_start_s": round(back - started, 3),
            },
            "history_events": EVENTS,
        }
    finally:
        worker.terminate()
        worker.wait(30)
        manager.down(own, ["redis"])
        store.client.command(f"DROP DATABASE IF EXISTS {store.database}")
    write_result("recovery", result)


if __name__ == "__main__":
    main()
