"""What a worker is made of, built once from settings: the one factory. No Faust here.

:func:`build_parts` makes every client and every part (the pipeline, the config follower, the alert
dispatcher, the insights and the Redis recovery) and connects them; each part gets the one Redis
client, the one ClickHouse store and the one :class:`ConfigState` it shares with the others. The
Faust app (:mod:`streams.app`) only adds the transport: it hands in how to send to Kafka and runs
the agents and timers.

:func:`prepare` runs before the app: topics, ClickHouse tables, Redis's state restored if it was
lost, and the whole config topic applied. It uses clients of its own (its event loop is not the
app's), so the parts' clients are never replaced under them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from alerting.dispatcher import AlertDispatcher, AlertMetrics
from alerting.senders import Senders
from bus.config_topic import read_config
from bus.topic_admin import ensure_topics
from bus.topics import Send, Topics
from enforcement.keys import KeyLayout
from enforcement.redis_clients import async_redis, sync_redis
from schemas.config_records import ConfigState
from schemas.settings import Settings
from sinks.usage_store import UsageStore
from streams.config_follower import ConfigFollower
from streams.insights_runner import InsightsRunner
from streams.metrics import InsightMetrics, WorkerMetrics
from streams.pipeline import Pipeline
from streams.processing import Bounds
from streams.rebuild import restore_if_lost
from streams.recovery import Recovery, restored
from streams.redis_apply import RedisApplier

__all__ = ["Parts", "build_parts", "prepare"]

log = logging.getLogger("spendstream.worker")


@dataclass
class Parts:
    settings: Settings
    topics: Topics
    layout: KeyLayout
    metrics: WorkerMetrics
    redis: Any  # redis.asyncio.Redis or its RedisCluster
    store: UsageStore
    config: ConfigState
    pipeline: Pipeline
    follower: ConfigFollower
    dispatcher: AlertDispatcher
    insights: InsightsRunner
    recovery: Recovery


def build_parts(
    settings: Settings,
    send: Send,
    *,
    registry: CollectorRegistry = REGISTRY,
    sink_rows: int = 10_000,
    sink_interval_s: float = 1.0,
    on_restored: Callable[[], None] = lambda: None,
) -> Parts:
    """Every part of a worker, from settings; ``send`` produces to Kafka (the app's producer)."""
    topics = Topics(settings.kafka.topic_prefix)
    layout = KeyLayout(settings.redis.key_prefix)
    metrics = WorkerMetrics(registry)
    redis = async_redis(settings.redis)
    store = UsageStore.of(settings.clickhouse)
    config = ConfigState(os.environ)
    stream = settings.stream
    open_gate = asyncio.Event()  # cleared while Redis's state is restored: the pipeline applies no usage then
    recovery: Recovery  # made below, from the pipeline; the pipeline calls it only once the worker runs

    async def restore_org(org_id: str) -> None:
        await recovery.org_not_loaded(org_id, config.orgs.get(org_id))

    pipeline = Pipeline(
        topics,
        RedisApplier(redis, layout),
        store,
        send,
        metrics,
        sink_rows,
        sink_interval_s,
        config=config,
        max_buffered_rows=stream.max_buffered_rows,
        bounds=Bounds(
            stream.max_event_bytes, timedelta(seconds=stream.max_future_s), timedelta(days=stream.max_age_days)
        ),
        open_gate=open_gate,
        on_not_loaded=restore_org,
    )

    async def state_restored() -> bool:
        return (await restored(redis, layout))[0]

    follower = ConfigFollower(config, redis, layout, store, metrics, state_restored)
    dispatcher = AlertDispatcher(
        redis,
        layout,
        config,
        Senders.of(settings.alerts),
        store,
        settings.alerts,
        send,
        topics.alerts,
        AlertMetrics(registry),
    )
    insights = InsightsRunner(
        redis, layout, store, config, send, topics.alerts, settings.insights, InsightMetrics(registry)
    )
    recovery = Recovery(
        settings,
        redis,
        layout,
        metrics,
        pipeline.flushes_held,
        pipeline.reapply_pending,
        on_restored=on_restored,
        open_gate=open_gate,
    )
    return Parts(
        settings, topics, layout, metrics, redis, store, config, pipeline, follower, dispatcher, insights, recovery
    )


def prepare(parts: Parts) -> dict[int, int]:
    """Before the app starts: topics, tables, Redis's state, the config topic applied. Returns where the
    config topic ended (per partition), where the follower goes on from."""
    settings = parts.settings
    ensure_topics(settings.kafka.bootstrap, parts.topics)
    parts.store.migrate()
    records, ends = read_config(settings.kafka.bootstrap, parts.topics.config)
    sync = sync_redis(settings.redis)
    try:
        report = restore_if_lost(settings, sync, parts.store, progress=log.info)
        if report is not None:
            log.info("Redis state restored at start: %d orgs, %d counters", report.orgs, report.counters)
    finally:
        sync.close()

    async def apply_all() -> None:
        redis = async_redis(settings.redis)  # this loop's own client: the parts' client belongs to the app's loop
        follower = ConfigFollower(parts.config, redis, parts.layout, parts.store, parts.metrics)
        try:
            for record, partition, offset in records:
                await follower.apply(record, partition, offset)
        finally:
            await redis.aclose()

    asyncio.run(apply_all())
    parts.pipeline.ch_watermarks = parts.store.watermarks()
    log.info("config applied (%d records), %d prices", len(records), len(parts.pipeline.catalogue))
    return ends
