"""Redis, ClickHouse and the Kafka broker fail under a steady replay: caps never admit what they must not,
and every event is counted once when all is back."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from enforcement.client import CapClient
from enforcement.decision import Outcome
from schemas.settings import Settings
from stack import manager
from stack.services import ClickHouseService, KafkaService, RedisService
from tests.faults.conftest import CAPPED, Faulty, kill, over_the_cap, wipe_redis_data

pytestmark = [pytest.mark.stack, pytest.mark.faults]


def caps_of(faulty: Faulty) -> CapClient:
    settings = faulty.dep.settings
    return CapClient.from_url(settings.redis.url, timeout_s=0.1, key_prefix=settings.redis.key_prefix, org_cache_s=0)


def enforced(caps: CapClient) -> bool:
    """Denied by the hard cap itself: the state is loaded and counts the spend."""
    decision = caps.reserve(CAPPED, f"probe-{uuid.uuid4().hex[:8]}", 1_000)
    return decision.outcome is Outcome.DENIED and "user/capped monthly hard cap" in decision.reason


def capped_user_spent(faulty: Faulty) -> None:
    faulty.send(over_the_cap(uuid.uuid4().hex[:8]))
    caps = caps_of(faulty)
    faulty.dep.wait_for(lambda: enforced(caps), 60, "the capped user's spend counted")


@pytest.mark.parametrize("data", ["kept", "deleted"])
def test_redis_sigkilled_and_restarted(faulty: Faulty, stack: Settings, data: str) -> None:
    dep = faulty.dep
    dep.start_worker()
    capped_user_spent(faulty)
    replay = faulty.replay()
    dep.wait_for(lambda: dep.ch_rows() >= 5_000, 120, "the replay under way")
    redis_service = RedisService(stack.stack)
    kill(redis_service)
    if data == "deleted":
        wipe_redis_data(redis_service)
    caps = caps_of(faulty)
    admitted = []
    outage_ends = time.monotonic() + 3
    while time.monotonic() < outage_ends:  # Redis is down: over-cap requests are never admitted
        decision = caps.reserve(CAPPED, f"down-{uuid.uuid4().hex[:8]}", 1_000)
        admitted += [decision.reason] if decision.allowed else []
        time.sleep(0.05)
    manager.up(stack.stack, ["redis"])
    back = time.monotonic()
    reasons = set()
    while not enforced(caps):  # back, but maybe without its state: still never admitted
        decision = caps.reserve(CAPPED, f"back-{uuid.uuid4().hex[:8]}", 1_000)
        admitted += [decision.reason] if decision.allowed else []
        reasons.add(decision.reason.split(";")[0])
        assert time.monotonic() - back < 60, "caps were not enforced again within 60 s"
        time.sleep(0.02)
    assert admitted == []
    if data == "deleted":  # until the worker restored the state, the answer said so
        assert any("state of org acme is not loaded" in reason for reason in reasons), reasons
    replay.wait()
    faulty.conserved([*replay.events, *faulty.sent])
    assert (dep.metric("spendstream_redis_recoveries_total") or 0) >= 1


def test_clickhouse_down_for_60_seconds(faulty: Faulty, stack: Settings) -> None:
    """Caps keep seeing new spend while ClickHouse is down; memory stays bounded; it all lands afterwards."""
    dep = faulty.dep
    worker = dep.start_worker()
    replay = faulty.replay()
    dep.wait_for(lambda: dep.ch_rows() >= 3_000, 120, "the replay under way")
    clickhouse = ClickHouseService(stack.stack)
    clickhouse.stop()
    began = time.monotonic()
    try:
        caps = caps_of(faulty)
        assert not enforced(caps)  # the capped user has spent nothing yet
        faulty.send(over_the_cap("during-outage"))
        dep.wait_for(lambda: enforced(caps), 30, "spend that arrived during the outage, enforced")
        peak_rss = 0
        while time.monotonic() - began < 60:
            peak_rss = max(peak_rss, rss_mib(worker.pid))
            buffered = dep.metric("spendstream_sink_buffered_rows") or 0
            assert buffered <= dep.settings.stream.max_buffered_rows
            time.sleep(1)
    finally:
        manager.up(stack.stack, ["clickhouse"])
    assert peak_rss < 1024, f"the worker grew to {peak_rss} MiB"
    replay.wait()
    faulty.conserved([*replay.events, *faulty.sent], timeout=300)


def test_kafka_broker_sigkilled_and_restarted(faulty: Faulty, stack: Settings) -> None:
    dep = faulty.dep
    dep.start_worker()
    replay = faulty.replay()
    dep.wait_for(lambda: dep.ch_rows() >= 5_000, 120, "the replay under way")
    kill(KafkaService(stack.stack))
    time.sleep(3)
    manager.up(stack.stack, ["kafka"])
    replay.wait(timeout=400)
    faulty.conserved(replay.events, timeout=300)


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


__all__ = ["UTC", "datetime"]
