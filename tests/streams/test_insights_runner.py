"""The insights runner against real ClickHouse and Redis, with the clock in the test's hands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from enforcement.keys import KeyLayout
from schemas.alerts import Spike, decode_alert
from schemas.config_records import ConfigState
from schemas.events import UsageEvent
from schemas.settings import InsightSettings, Settings
from sinks.usage_rows import usage_row
from sinks.usage_store import UsageStore
from streams.insights_runner import InsightsRunner

pytestmark = pytest.mark.stack

DAY0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def test_hourly_spikes_are_judged_against_the_same_hour_of_earlier_days(
    stack: Settings, ch_database: str, key_prefix: str
) -> None:
    store = UsageStore(stack.clickhouse.host, stack.clickhouse.port, ch_database)
    store.migrate()
    rows = []
    offset = 0
    for day in range(5):
        for hour in range(24):
            busy = 9 <= hour < 18
            cost = 1_000_000_000 if busy else 20_000_000  # $1 an office hour, $0.02 at night
            if day == 4 and hour == 11:
                cost = 9_000_000_000  # Friday 11:00: nine times the usual
            event = UsageEvent(
                event_id=f"h{day}-{hour}",
                occurred_at=DAY0 + timedelta(days=day, hours=hour, minutes=30),
                org_id="acme",
                user_id="ada",
                department_id="eng",
                feature="chat",
                provider="openai",
                model="gpt-4o",
            )
            rows.append(usage_row(event, cost, "catalogue", 0, offset))
            offset += 1
    store.insert_usage(rows, "seed")
    sent: list[bytes] = []

    async def send(topic: str, key: bytes | None, value: bytes, headers: object) -> None:
        sent.append(value)

    async def run() -> None:
        client = aioredis.Redis.from_url(stack.redis.url)
        runner = InsightsRunner(
            client,
            KeyLayout(key_prefix),
            store,
            ConfigState({}),
            send,
            "alerts",
            InsightSettings(spike_bucket_s=60, spike_lag_s=0, spike_hourly_warmup=3, spike_min_usd="0.01"),
        )
        del runner.state.watches[60]  # minutes are another test's; here only hours
        runner.state.watches[3600].last_bucket = int(DAY0.timestamp()) - 3600  # start with the seeded week
        for hour in range(1, 5 * 24 + 1):
            await runner.spikes_tick(DAY0 + timedelta(hours=hour))
        await client.aclose()

    asyncio.run(run())
    spikes = [a for a in map(decode_alert, sent) if isinstance(a, Spike)]
    hourly = [a for a in spikes if a.period == "3600s"]
    # the office-hours ramp every morning is no spike; Friday 11:00 is, for the org, eng, gpt-4o and chat
    assert sorted(a.scope for a in hourly) == ["department/eng", "feature/chat", "model/gpt-4o", "org/acme"]
    assert {a.period_key for a in hourly} == {(DAY0 + timedelta(days=4, hours=11)).isoformat()}
    org = next(a for a in hourly if a.scope == "org/acme")
    assert org.observed_nanos == 9_000_000_000
    assert org.expected_nanos == pytest.approx(1_000_000_000, rel=0.01)
    rows = store.query(f"SELECT entity, bucket_seconds FROM {ch_database}.anomalies ORDER BY entity")
    assert [r for r in rows if r[1] == 3600] == [
        ("department/eng", 3600),
        ("feature/chat", 3600),
        ("model/gpt-4o", 3600),
        ("org/acme", 3600),
    ]
