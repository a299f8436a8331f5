"""An isolated deployment per test (its own topics, Redis prefix, ClickHouse database and worker processes),
and what the end-to-end tests of every package check it with. The fixtures are in ``tests/conftest.py``."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
from confluent_kafka import Consumer, Producer, TopicPartition

from bus.topics import Topics
from enforcement.keys import KeyLayout, PeriodKeys
from enforcement.redis_clients import sync_redis
from schemas.config_records import prices_overrides_record
from schemas.events import UsageEvent
from schemas.price_sources import load_overrides
from schemas.pricing import PriceCatalogue, rate
from schemas.settings import Settings
from workloads.generators import DEFAULT_TRACE, trace_events

TRACE = DEFAULT_TRACE
PRICES = (Path(__file__).resolve().parents[1] / "examples" / "prices.yaml").read_text()
SCOPE_FIELDS = (
    ("org", "org_id"),
    ("department", "department_id"),
    ("user", "user_id"),
    ("feature", "feature"),
    ("model", "model"),
    ("provider", "provider"),
    ("apikey", "api_key_id"),
)


ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def recent_start(now: datetime, span: timedelta) -> datetime:
    """A start such that [start, start + span] lies in today's UTC day and ends before now when it can."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return max(midnight, now - span - timedelta(minutes=1))


@dataclass
class Deployment:
    settings: Settings
    env: dict[str, str]
    metrics_port: int
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def topics(self) -> Topics:
        return Topics(self.settings.kafka.topic_prefix)

    @property
    def layout(self) -> KeyLayout:
        return KeyLayout(self.settings.redis.key_prefix)

    @property
    def catalogue(self) -> PriceCatalogue:
        return load_overrides(PRICES)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "admin.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    def start_worker(self) -> subprocess.Popen[bytes]:
        """A worker process; :meth:`metric` reads the newest one's metrics (each has a port of its own)."""
        if any(worker.poll() is None for worker in self.workers):
            self.metrics_port = free_port()
        log = open(f"/tmp/{self.settings.kafka.topic_prefix}worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "admin.cli",
                "worker",
                "--metrics-port",
                str(self.metrics_port),
                "--metrics-loopback",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(proc)
        self.wait_for(lambda: self.metric("spendstream_events_consumed_total") is not None, 60, "worker metrics")
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def metric(self, name: str, labels: str = "") -> float | None:
        """The sum of a metric's samples; ``labels`` is the exact ``{...}`` or a ``key="value"`` they contain."""
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return None
        total = None
        for line in text.splitlines():
            if not labels:
                hit = line.startswith((name + " ", name + "{"))
            elif labels.startswith("{"):
                hit = line.startswith(name + labels + " ")
            else:
                hit = line.startswith(name + "{") and labels in line.split("}")[0]
            if hit:
                total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
        return total

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def producer(self) -> Producer:
        return Producer(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
            }
        )

    def send(self, events: list[UsageEvent] | list[tuple[bytes, bytes]]) -> None:
        from schemas.events import encode_event

        producer = self.producer()
        for item in events:
            key, value = (item.org_id.encode(), encode_event(item)) if isinstance(item, UsageEvent) else item
            while True:
                try:
                    producer.produce(self.topics.usage, key=key, value=value)
                    break
                except BufferError:
                    producer.poll(0.05)
        assert producer.flush(60) == 0

    def ch(self) -> Any:
        return clickhouse_connect.get_client(host=self.settings.clickhouse.host, port=self.settings.clickhouse.port)

    def ch_rows(self) -> int:
        try:
            return int(self.ch().command(f"SELECT count() FROM {self.settings.clickhouse.database}.usage_events"))
        except Exception:
            return -1

    def redis(self) -> Any:
        """A sync client of this deployment's Redis (a Cluster's too)."""
        return sync_redis(self.settings.redis)

    def use_redis(self, url: str, cluster: bool = False) -> None:
        """Point this deployment (its settings and its processes' environment) at another Redis."""
        redis_settings = self.settings.redis.model_copy(update={"url": url, "cluster": cluster})
        self.settings = self.settings.model_copy(update={"redis": redis_settings})
        self.env.update({"SPENDSTREAM_REDIS__URL": url, "SPENDSTREAM_REDIS__CLUSTER": str(cluster).lower()})

    def redis_spend(self, org_id: str, now: datetime) -> dict[str, dict[str, int]]:
        periods = PeriodKeys.at(now, "UTC")
        client = self.redis()
        out = {}
        for name, key in zip(("daily", "weekly", "monthly"), self.layout.spent(org_id, periods), strict=True):
            out[name] = {k.decode(): int(v) for k, v in client.hgetall(key).items()}
        return out


def expected_spend(events: list[UsageEvent], catalogue: PriceCatalogue) -> dict[str, dict[str, int]]:
    """An independent computation: cost per org, then per scope of that org."""
    out: dict[str, dict[str, int]] = {}
    for event in events:
        cost = rate(event, catalogue).cost_nanos
        scopes = out.setdefault(event.org_id, {})
        for kind, attr in SCOPE_FIELDS:
            value = getattr(event, attr)
            if value:
                scopes[f"{kind}/{value}"] = scopes.get(f"{kind}/{value}", 0) + cost
    return out


def make_events(count: int, now: datetime, prefix: str, seed: int = 7) -> list[UsageEvent]:
    speedup = 20.0
    start = recent_start(now, timedelta(hours=1) / speedup)
    return list(trace_events(TRACE.read_text(), count, seed=seed, start=start, speedup=speedup, prefix=prefix))


@contextmanager
def deployed(stack: Settings) -> Iterator[Deployment]:
    """A deployment of its own on the shared stack: topics, Redis keys and a ClickHouse database with a
    fresh prefix, removed afterwards."""
    tag = uuid.uuid4().hex[:10]
    metrics_port = free_port()
    env = {
        **os.environ,
        "SPENDSTREAM_KAFKA__BOOTSTRAP": stack.kafka.bootstrap,
        "SPENDSTREAM_KAFKA__TOPIC_PREFIX": f"t{tag}.",
        "SPENDSTREAM_REDIS__KEY_PREFIX": f"t{tag}",
        "SPENDSTREAM_CLICKHOUSE__DATABASE": f"t_{tag}",
        "SPENDSTREAM_METRICS_PORT": str(metrics_port),
        # the tests' Slack and Teams receivers listen on loopback, which an org's webhook may not name otherwise
        "SPENDSTREAM_ALERTS__WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    }
    settings = Settings.model_validate(
        {
            "kafka": {"bootstrap": stack.kafka.bootstrap, "topic_prefix": f"t{tag}."},
            "redis": {"url": stack.redis.url, "key_prefix": f"t{tag}"},
            "clickhouse": {"host": stack.clickhouse.host, "port": stack.clickhouse.port, "database": f"t_{tag}"},
            "stack": stack.stack.model_dump(),
        }
    )
    dep = Deployment(settings, env, metrics_port)
    from bus.topic_admin import ensure_topics

    ensure_topics(settings.kafka.bootstrap, dep.topics)
    record = prices_overrides_record(PRICES)
    producer = dep.producer()
    producer.produce(dep.topics.config, key=record.key.encode(), value=record.value)
    assert producer.flush(30) == 0
    yield dep
    for proc in dep.workers:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    client = dep.redis()
    for key in client.scan_iter(f"t{tag}:*", count=10_000):
        client.delete(key)
    dep.ch().command(f"DROP DATABASE IF EXISTS t_{tag}")
    delete_topics_of(settings.kafka.bootstrap, tag)


def delete_topics_of(bootstrap: str, tag: str) -> None:
    """Delete a deployment's topics (its own and Faust's, all named with its tag). Left behind, thousands
    of them slowed every broker start: after a SIGKILL the broker recovers each partition's log first."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        mine = [name for name in admin.list_topics(timeout=10).topics if tag in name]
        for future in admin.delete_topics(mine, operation_timeout=30).values() if mine else ():
            future.result()
    except KafkaException as exc:  # the tests passed or failed already; say so and go on
        warnings.warn(f"topics of deployment {tag} not deleted: {exc}", stacklevel=1)


def ch_totals(dep: Deployment) -> dict[str, tuple[int, int]]:
    db = dep.settings.clickhouse.database
    raw = dict(dep.ch().query(f"SELECT org_id, sum(cost_nanos) FROM {db}.usage_events GROUP BY org_id").result_rows)
    hourly = dict(dep.ch().query(f"SELECT org_id, sum(cost_nanos) FROM {db}.usage_hourly GROUP BY org_id").result_rows)
    daily = dict(dep.ch().query(f"SELECT org_id, sum(cost_nanos) FROM {db}.usage_daily GROUP BY org_id").result_rows)
    assert raw == hourly == daily, (raw, hourly, daily)
    return raw


def assert_exact(dep: Deployment, events: list) -> None:
    """ClickHouse holds every event's cost, and Redis's counters of every day, week and month the events
    fall in hold exactly theirs (so a run that crosses midnight checks both days)."""
    expected = expected_spend(events, dep.catalogue)
    assert ch_totals(dep) == {org: scopes[f"org/{org}"] for org, scopes in expected.items()}
    groups: dict[tuple[str, str], tuple[datetime, list]] = {}
    for event in events:
        periods = PeriodKeys.at(event.occurred_at, "UTC")
        for period in ("daily", "weekly", "monthly"):
            groups.setdefault((period, periods.key(period)), (event.occurred_at, []))[1].append(event)
    for (period, key), (when, members) in groups.items():
        in_period = expected_spend(members, dep.catalogue)
        for org in expected:
            assert dep.redis_spend(org, when)[period] == in_period.get(org, {}), (org, period, key)


def records_of(dep: Deployment, topic: str) -> list[tuple[bytes | None, dict[str, bytes]]]:
    consumer = Consumer(
        {"bootstrap.servers": dep.settings.kafka.bootstrap, "group.id": "check", "enable.auto.commit": False}
    )
    out = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            while True:
                message = consumer.poll(10)
                assert message is not None and not message.error()
                out.append((message.value(), dict(message.headers() or [])))
                if message.offset() >= high - 1:
                    break
    finally:
        consumer.close()
    return out


def start_report_scheduler(dep: Deployment, smtp_port: int) -> tuple[subprocess.Popen[str], int]:
    """``spendstream reports scheduler`` for ``dep``, polling every 0.3 s and mailing to ``smtp_port``; the
    process and its metrics port."""
    env = {
        **dep.env,
        "SPENDSTREAM_REPORTS__POLL_S": "0.3",
        "SPENDSTREAM_REPORTS__METRICS_PORT": "0",
        "SPENDSTREAM_ALERTS__SMTP_HOST": "127.0.0.1",
        "SPENDSTREAM_ALERTS__SMTP_PORT": str(smtp_port),
        "SPENDSTREAM_ALERTS__SMTP_SECURITY": "none",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "admin.cli", "reports", "scheduler"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"metrics on :(\d+)/", line)
    assert found, line
    return proc, int(found.group(1))


def scheduler_polls(port: int) -> float:
    """When the scheduler on ``port`` last polled (its metric), 0 before it has."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(r"^spendstream_report_scheduler_last_poll_timestamp_seconds (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0
