"""A Redis outage under a running worker: its timers fail and retry, the stream waits, nothing stops."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from datetime import UTC, datetime

import pytest

from schemas.events import UsageEvent
from tests.deployment import Deployment

pytestmark = pytest.mark.stack


def _redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise AssertionError("redis-server did not start")


def _events(tag: str, count: int) -> list[UsageEvent]:
    return [
        UsageEvent(
            event_id=f"{tag}-{i}",
            occurred_at=datetime.now(UTC),
            org_id="acme",
            user_id="ada",
            feature="chat",
            provider="openai",
            model="gpt-4o",
            output_tokens=1_000,
        )
        for i in range(count)
    ]


def test_the_worker_rides_out_a_redis_outage(deployment: Deployment) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    redis_proc = _redis(port)
    try:
        deployment.env["SPENDSTREAM_REDIS__URL"] = f"redis://127.0.0.1:{port}/0"
        worker = deployment.start_worker()
        tag = uuid.uuid4().hex[:6]
        deployment.send(_events(tag + "a", 10))
        deployment.wait_for(lambda: deployment.metric("spendstream_events_applied_total") == 10, 60, "first events")

        redis_proc.kill()
        redis_proc.wait()
        deployment.send(_events(tag + "b", 10))  # arrive while Redis is gone
        deployment.wait_for(
            lambda: (deployment.metric("spendstream_worker_background_failures_total", 'task="denials"') or 0) >= 2,
            30,
            "the denials timer to fail and try again",
        )
        deployment.wait_for(
            lambda: (deployment.metric("spendstream_redis_apply_failures_total") or 0) >= 1, 30, "the stream to wait"
        )
        assert worker.poll() is None  # still running
        assert deployment.metric("spendstream_events_applied_total") == 10

        redis_proc = _redis(port)  # back, empty: Redis holds derived state
        deployment.wait_for(
            lambda: deployment.metric("spendstream_events_applied_total") == 20, 60, "the held events to apply"
        )
        failures = deployment.metric("spendstream_worker_background_failures_total", 'task="denials"') or 0
        time.sleep(2)  # the timer runs every 0.5 s: with Redis back it stops failing
        assert deployment.metric("spendstream_worker_background_failures_total", 'task="denials"') == failures
        assert worker.poll() is None
    finally:
        redis_proc.kill()
        redis_proc.wait()
