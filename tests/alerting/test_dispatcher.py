"""The dispatcher on its own, against real Redis, ClickHouse and local receivers: what it does not send."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as aioredis

from alerting.dispatcher import AlertDispatcher
from alerting.senders import Senders
from enforcement.keys import KeyLayout
from schemas.alerts import Alert, BudgetStage, encode_alert
from schemas.config_records import ConfigRecord, ConfigState
from schemas.settings import AlertSettings, Settings
from sinks.usage_store import UsageStore
from tests.receivers import Receivers, start_http

pytestmark = pytest.mark.stack


@pytest.fixture
def http() -> Iterator[Receivers]:
    receivers = start_http()
    yield receivers
    receivers.server.shutdown()


def alert(stage: int, scope: str = "department/eng") -> BudgetStage:
    return BudgetStage(
        org_id="acme",
        scope=scope,
        period="monthly",
        period_key=f"{datetime.now(UTC):%Y-%m}",  # the current month: a closed one is not sent
        stage=stage,
        limit_nanos=10**9,
        spent_nanos=stage * 10**7,
        detected_at=datetime.now(UTC).isoformat(),
    )


def run_dispatch(
    stack: Settings,
    ch_database: str,
    key_prefix: str,
    http: Receivers,
    channels: dict[str, dict[str, object]],
    alerts: list[Alert],
) -> list[tuple[object, ...]]:
    config = ConfigState({})
    for name, body in channels.items():
        config.apply(ConfigRecord(f"channel/acme/{name}", json.dumps(body).encode()))
    config.apply(ConfigRecord("routing/acme", json.dumps({"default": list(channels)}).encode()))
    store = UsageStore(stack.clickhouse.host, stack.clickhouse.port, ch_database)
    store.migrate()
    sent: list[bytes] = []

    async def send(topic: str, key: bytes | None, value: bytes, headers: object) -> None:
        sent.append(value)

    async def go() -> None:
        client = aioredis.Redis.from_url(stack.redis.url)
        async with httpx.AsyncClient(timeout=5) as session:
            dispatcher = AlertDispatcher(
                client,
                KeyLayout(key_prefix),
                config,
                Senders(session, pagerduty_url=f"{http.url}/v2/enqueue", webhook_allow=frozenset({"127.0.0.1"})),
                store,
                AlertSettings(backoff_base_s=0.05, backoff_max_s=0.1, max_attempts=3),
                send,
                "alerts",
            )
            await dispatcher.handle([encode_alert(a) for a in alerts])
            await dispatcher.flush_history()
        await client.aclose()

    asyncio.run(go())
    return store.query(
        f"SELECT channel, stage, outcome, attempts, error FROM {ch_database}.alert_history ORDER BY channel, stage"
    )


def test_permanent_failures_quiet_hours_and_rate_limits_are_recorded(
    stack: Settings, ch_database: str, key_prefix: str, http: Receivers
) -> None:
    now = datetime.now(UTC)
    quiet = {"from": (now - timedelta(hours=1)).strftime("%H:%M"), "to": (now + timedelta(hours=1)).strftime("%H:%M")}
    http.script("/slack/flaky", [(503, {}), (503, {}), (503, {})])  # more failures than attempts
    rows = run_dispatch(
        stack,
        ch_database,
        key_prefix,
        http,
        {
            "gone": {"type": "slack", "url": f"{http.url}/nowhere"},  # 404: no retry helps
            "flaky": {"type": "slack", "url": f"{http.url}/slack/flaky"},
            "night": {"type": "teams", "url": f"{http.url}/teams/night", "quiet_hours": quiet},
            "narrow": {"type": "slack", "url": f"{http.url}/slack/narrow", "rate_per_minute": 1},
        },
        [alert(50), alert(100)],
    )
    assert rows == [
        ("flaky", 50, "failed", 3, 'HTTP 503: {"status": "scripted failure"}'),
        ("flaky", 100, "sent", 1, ""),
        ("gone", 50, "failed", 1, "HTTP 404: no_service"),
        ("gone", 100, "failed", 1, "HTTP 404: no_service"),
        ("narrow", 50, "sent", 1, ""),
        ("narrow", 100, "suppressed_rate_limit", 0, ""),
        ("night", 50, "suppressed_quiet_hours", 0, ""),
        ("night", 100, "sent", 1, ""),  # critical goes through quiet hours
    ]
    assert [r.body["text"] for r in http.on("/slack/narrow")] == [
        "acme: department eng reached 50% of its monthly budget"
    ]
    assert len(http.on("/teams/night")) == 1
