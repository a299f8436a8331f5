"""The fault-injection suite's tools: a steady replay, the services to kill, and the conservation check.

Each case runs a steady replay of at least 20,000 events through the real stack, injects its fault,
and then checks that every event is stored in ClickHouse exactly once, that Redis agrees with
ClickHouse for every org and scope (to the nano-USD, and ``spendstream drift`` says 0), and that no
alert reached its receiver twice. The cases kill and restart the shared local services; each leaves
them running again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bus.usage_producer import UsageProducer
from enforcement.subject import Subject
from schemas.events import UsageEvent
from schemas.settings import Settings
from stack import manager
from stack.services import ClickHouseService, KafkaService, RedisService
from tests.deployment import Deployment, assert_exact, make_events
from tests.receivers import Receivers, start_http

EVENTS = 20_000
RATE = 1_500.0  # events a second: the replay lasts about 13 s

# budgets whose stages the replay crosses, with every crossing going to a local Slack receiver
BUDGETS = """
orgs:
  acme: {}
  globex: {}
  initech: {}
channels:
  acme:
    eng-slack: {type: slack, url: "env:SPENDSTREAM_SECRET_ACME_T_SLACK_URL"}
routing:
  acme: {default: [eng-slack]}
budgets:  # 20,000 events of the trace: about $55 for acme, $14 for each department, $20 on gpt-4o
  - {org: acme, scope: org, period: monthly, limit: "100", mode: soft, stages: [10, 25, 50]}
  - {org: acme, scope: department, id: eng, period: daily, limit: "20", mode: soft, stages: [10, 30, 60]}
  - {org: acme, scope: department, id: sales, period: daily, limit: "20", mode: soft, stages: [10, 30, 60]}
  - {org: acme, scope: model, id: gpt-4o, period: monthly, limit: "40", mode: soft, stages: [10, 25, 50]}
  - {org: acme, scope: user, id: capped, period: monthly, limit: "0.01", mode: hard}
"""
CAPPED = Subject(
    org_id="acme", department_id="eng", user_id="capped", feature="chat", model="gpt-4o", provider="openai"
)


def over_the_cap(tag: str) -> UsageEvent:
    """$0.10 of gpt-4o output for user capped, whose monthly hard cap is $0.01."""
    return UsageEvent(
        event_id=f"over-{tag}",
        occurred_at=datetime.now(UTC),
        org_id="acme",
        department_id="eng",
        user_id="capped",
        feature="chat",
        provider="openai",
        model="gpt-4o",
        output_tokens=10_000,
    )


@dataclass
class Replay:
    events: list[UsageEvent]
    thread: threading.Thread
    sent: list[int] = field(default_factory=list)

    def wait(self, timeout: float = 300) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the replay did not finish"
        assert self.sent == [len(self.events)]


@dataclass
class Faulty:
    dep: Deployment
    http: Receivers
    sent: list[UsageEvent] = field(default_factory=list)  # events sent besides the replays

    def send(self, event: UsageEvent) -> None:
        self.sent.append(event)
        self.dep.send([event])

    def replay(self, events: list[UsageEvent] | None = None, rate: float = RATE) -> Replay:
        """Produce events at a steady rate in the background, as proxies would."""
        chosen = events if events is not None else make_events(EVENTS, datetime.now(UTC), f"f{int(time.time())}")
        replay = Replay(chosen, threading.Thread(target=lambda: None))

        def run() -> None:
            producer = UsageProducer(self.dep.settings.kafka.bootstrap, self.dep.topics.usage, linger_ms=5)
            # a broker restarted after SIGKILL first recovers every partition's log: wait as long as the
            # producer itself keeps a message (librdkafka's message.timeout.ms, 300 s)
            replay.sent.append(producer.replay(chosen, len(chosen), rate, progress=False, flush_timeout_s=300))

        replay.thread = threading.Thread(target=run, daemon=True)
        replay.thread.start()
        return replay

    def worker_logs(self, tail: int = 2_000) -> str:
        logs = sorted(Path("/tmp").glob(f"{self.dep.settings.kafka.topic_prefix}worker-*.log"))
        return "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')[-tail:]}" for log in logs)

    def consumed(self) -> float:
        return self.dep.metric("spendstream_events_consumed_total") or 0.0

    def conserved(self, events: list[UsageEvent], timeout: float = 240) -> None:
        """Every event once in ClickHouse, Redis equal to it everywhere, no alert twice."""
        dep = self.dep
        try:
            dep.wait_for(lambda: dep.ch_rows() >= len(events), timeout, f"{len(events)} events in ClickHouse")
        except AssertionError as exc:  # what the workers said: a timeout alone does not tell stuck from slow
            spans = (
                dep.ch()
                .query(  # per partition: rows, lowest and highest offset (a gap is a loss)
                    f"SELECT kafka_partition, count(), min(kafka_offset), max(kafka_offset) "
                    f"FROM {dep.settings.clickhouse.database}.usage_events GROUP BY kafka_partition ORDER BY 1"
                )
                .result_rows
            )
            raise AssertionError(f"{exc} ({dep.ch_rows()} there: {spans})\n{self.worker_logs()}") from exc
        db = dep.settings.clickhouse.database
        count, unique = dep.ch().query(f"SELECT count(), uniqExact(event_id) FROM {db}.usage_events").result_rows[0]
        twice_at = (
            dep.ch()
            .query(  # where, for the failure's message: partitions and offsets stored twice
                f"SELECT kafka_partition, groupArray(kafka_offset) FROM (SELECT kafka_partition, kafka_offset "
                f"FROM {db}.usage_events GROUP BY kafka_partition, kafka_offset HAVING count() > 1) GROUP BY 1"
            )
            .result_rows
        )
        assert (count, unique) == (len(events), len(events)), f"an event stored twice {twice_at}, or lost"
        assert_exact(dep, events)
        drift = dep.cli("drift")
        assert drift.returncode == 0, drift.stdout + drift.stderr
        headers = [json.dumps(r.body.get("blocks", [{}])[0], sort_keys=True) for r in self.http.on("/slack/")]
        twice = [text for text, n in Counter(headers).items() if n > 1]
        assert not twice, f"alerts sent twice: {twice}"
        assert headers, "the replay crossed no budget stage: the alert check saw nothing"


@contextlib.contextmanager
def faulty_on(dep: Deployment, stack: Settings) -> Iterator[Faulty]:
    """The deployment with budgets whose stages the replay crosses, alerts to a local Slack receiver."""
    http = start_http()
    dep.env["SPENDSTREAM_SECRET_ACME_T_SLACK_URL"] = f"{http.url}/slack/eng"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(BUDGETS)
    result = dep.cli("budgets", "apply", handle.name)
    assert result.returncode == 0, result.stderr
    try:
        yield Faulty(dep, http)
    finally:
        http.server.shutdown()
        manager.up(stack.stack)  # whatever a case killed runs again for the next test


@pytest.fixture
def faulty(deployment: Deployment, stack: Settings) -> Iterator[Faulty]:
    with faulty_on(deployment, stack) as made:
        yield made


def kill(service: RedisService | ClickHouseService | KafkaService) -> None:
    """SIGKILL: no flush, no clean shutdown."""
    pid = service.proc.pid()
    assert pid is not None, f"{service.name} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while service.proc.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)


def wipe_redis_data(service: RedisService) -> None:
    """What a lost volume leaves: no append-only file, no snapshot."""
    shutil.rmtree(service.home / "appendonlydir", ignore_errors=True)
    (service.home / "dump.rdb").unlink(missing_ok=True)
