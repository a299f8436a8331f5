"""The insights runner against real ClickHouse and Redis, with the clock in the test's hands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from enforcement.keys import KeyLayout
from insights.state import STATE_VERSION, dump_state, fresh_state
from schemas.alerts import Spike, decode_alert
from schemas.config_records import ConfigState
from schemas.events import UsageEvent
from schemas.settings import InsightSettings, Settings
from sinks.usage_rows import usage_row
from sinks.usage_store import UsageStore
from streams.insights_runner import InsightsRunner
from streams.metrics import InsightMetrics

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
            event = hour_event(DAY0 + timedelta(days=day, hours=hour, minutes=30), offset)
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
    assert sorted(a.scope for a in hourly) == [
        "department/eng",
        "feature/chat",
        "model/gpt-4o",
        "org/acme",
        "user/ada",
    ]
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
        ("user/ada", 3600),
    ]


def hour_event(at: datetime, n: int) -> UsageEvent:
    return UsageEvent(
        event_id=f"r{n}",
        occurred_at=at,
        org_id="acme",
        user_id="ada",
        department_id="eng",
        feature="chat",
        provider="openai",
        model="gpt-4o",
    )


def test_a_model_change_resets_and_relearns_the_hours_from_clickhouse(
    stack: Settings, ch_database: str, key_prefix: str
) -> None:
    """A checkpoint of an older model version is not restored; the new hourly detector learns the last two
    weeks of hours from ClickHouse, reporting none of them, and judges the next hour warm: a weekday hour at
    three times its norm is a spike, with the norm it learnt."""
    store = UsageStore(stack.clickhouse.host, stack.clickhouse.port, ch_database)
    store.migrate()
    live = DAY0 + timedelta(days=15, hours=10)  # Tuesday 17 March, 10:00
    rows = []
    for n in range(15 * 24 + 11):
        at = DAY0 + timedelta(hours=n)
        office = (1_000_000_000 if 9 <= at.hour < 18 else 20_000_000) // (5 if at.weekday() >= 5 else 1)
        cost = 3 * office if at == live else office
        rows.append(usage_row(hour_event(at + timedelta(minutes=30), n), cost, "catalogue", 0, n))
    store.insert_usage(rows, "seed")
    sent: list[bytes] = []

    async def send(topic: str, key: bytes | None, value: bytes, headers: object) -> None:
        sent.append(value)

    async def run() -> tuple[bool, InsightsRunner]:
        client = aioredis.Redis.from_url(stack.redis.url)
        settings = InsightSettings(spike_lag_s=0)
        metrics = InsightMetrics(registry)
        runner = InsightsRunner(
            client, KeyLayout(key_prefix), store, ConfigState({}), send, "alerts", settings, metrics
        )
        older = dump_state(fresh_state(settings)).replace(
            STATE_VERSION.to_bytes(2, "big"), (STATE_VERSION - 1).to_bytes(2, "big"), 1
        )
        await client.set(runner.state_key, older)
        restored = await runner.load()
        now = live + timedelta(hours=1, seconds=1)
        for _ in range(5):  # two weeks of hours take three runs
            await runner.spikes_tick(now)
        await client.aclose()
        return restored, runner

    registry = CollectorRegistry()
    restored, runner = asyncio.run(run())
    assert not restored and registry.get_sample_value("spendstream_insights_state_reset_total") == 1
    watch = runner.state.watches[3600]
    assert watch.last_bucket == int(live.timestamp()) and watch.live_from == int(live.timestamp())
    org = watch.detector.entities["acme|org/acme"]
    assert org.counts[10] == 11 and org.counts[24 + 10] == 4  # ten weekdays' 10:00 and the live one; 4 days off
    hourly = [a for a in map(decode_alert, sent) if isinstance(a, Spike) and a.period == "3600s"]
    assert {a.period_key for a in hourly} == {live.isoformat()}  # nothing from the relearnt history
    assert sorted(a.scope for a in hourly) == [
        "department/eng",
        "feature/chat",
        "model/gpt-4o",
        "org/acme",
        "user/ada",
    ]
    alert = next(a for a in hourly if a.scope == "org/acme")
    assert alert.observed_nanos == 3_000_000_000
    assert alert.expected_nanos == pytest.approx(1_000_000_000, rel=0.01)
    anomalies = store.query(f"SELECT bucket FROM {ch_database}.anomalies WHERE bucket_seconds = 3600")
    assert {r[0].replace(tzinfo=UTC) for r in anomalies} == {live}
