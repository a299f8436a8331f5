"""Redis unreachable mid-stream: the pipeline retries the batch instead of failing, and counts it once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis
import redis.asyncio as aioredis

from bus.topics import Topics
from enforcement.budget_store import apply_budgets
from enforcement.keys import KeyLayout, PeriodKeys
from schemas.budgets import OrgConfig
from schemas.events import UsageEvent, encode_event
from schemas.settings import Settings
from sinks.usage_store import UsageStore
from streams.metrics import WorkerMetrics
from streams.pipeline import Pipeline
from streams.processing import Message
from streams.redis_apply import RedisApplier

pytestmark = pytest.mark.stack


def test_redis_outage_holds_the_batch_and_applies_it_once(
    stack: Settings, ch_database: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    now = datetime.now(UTC)
    events = [
        UsageEvent(
            event_id=f"o{i}",
            occurred_at=now,
            org_id="acme",
            user_id="ada",
            feature="chat",
            provider="openai",
            model="unpriced-model",
            input_tokens=10,
            cost_nanos=1_000 + i,
        )
        for i in range(20)
    ]
    messages = [Message(0, i, encode_event(e)) for i, e in enumerate(events)]
    layout = KeyLayout(key_prefix)
    apply_budgets(redis_client, layout, [OrgConfig("acme")], [])  # the org's state is loaded

    async def send(topic: str, key: bytes | None, value: bytes, headers: object) -> None:
        raise AssertionError(f"nothing should be sent to {topic}")

    class Ack:
        acked = 0

        def ack(self) -> None:
            Ack.acked += 1

    async def scenario() -> None:
        store = UsageStore(stack.clickhouse.host, stack.clickhouse.port, ch_database)
        store.migrate()
        dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        live = aioredis.Redis.from_url(stack.redis.url)
        pipeline = Pipeline(Topics("unused."), RedisApplier(dead, layout), store, send, WorkerMetrics())
        task = asyncio.ensure_future(pipeline.handle(messages, [Ack() for _ in messages]))  # noqa: RUF006
        for _ in range(500):
            if pipeline.metrics.redis_failures._value.get() >= 2 or task.done():
                break
            await asyncio.sleep(0.02)
        assert not task.done()  # held, not failed and not skipped
        pipeline.applier = RedisApplier(live, layout)  # Redis is back
        await task
        await pipeline.drain()
        assert Ack.acked == len(messages)
        assert store.count_usage() == len(events)
        await dead.aclose()
        await live.aclose()

    asyncio.run(scenario())
    monthly = layout.spent("acme", PeriodKeys.at(now, "UTC"))[2]
    assert int(redis_client.hget(monthly, "org/acme")) == sum(1_000 + i for i in range(20))
