"""``spendstream rebuild``: recompute the derived state in Redis from the config topic and ClickHouse.

Redis holds derived state only. This writes back, for every org: its
settings and budgets (from ``config.v1``); the spend counters of its open
day, week and month (from the raw events, cut in the org's time zone); the
per-partition offset watermarks (so a redelivery is still recognised); and
the duplicate window (fingerprints of the events ingested within it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from enforcement.budget_store import apply_budgets
from enforcement.core import DUPLICATE_WINDOW_S, SPENT_RETENTION_S
from enforcement.keys import KeyLayout, PeriodKeys, fingerprint
from schemas.budgets import OrgConfig, Period, period_bounds
from schemas.settings import Settings
from sinks import queries
from sinks.usage_store import UsageStore
from streams.config_records import ConfigState
from streams.kafka_admin import read_config
from streams.topics import Topics

__all__ = ["RebuildReport", "rebuild"]


@dataclass(frozen=True, slots=True)
class RebuildReport:
    orgs: int
    counters: int
    budgets: int
    fingerprints: int


def rebuild(
    settings: Settings, now: datetime | None = None, progress: Callable[[str], None] = lambda line: None
) -> RebuildReport:
    now = now or datetime.now(UTC)
    layout = KeyLayout(settings.redis.key_prefix)
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    client = redis.Redis.from_url(settings.redis.url, password=password)
    ch = settings.clickhouse
    store = UsageStore(ch.host, ch.port, ch.database, ch.username, ch.password.get_secret_value(), ch.secure)
    database = store.database

    state = ConfigState()
    for record, _, _ in read_config(settings.kafka.bootstrap, Topics(settings.kafka.topic_prefix).config)[0]:
        state.apply(record)
    budgets = apply_budgets(client, layout, state.orgs.values(), state.budgets.values())
    progress(f"config: {len(state.orgs)} orgs, {budgets} budgets")

    since = now - timedelta(days=40)
    orgs = {row[0] for row in store.query(*queries.orgs_since(database, since))}
    orgs |= set(state.orgs)
    counters = 0
    for org_id in sorted(orgs):
        tz = state.orgs.get(org_id, OrgConfig(org_id)).timezone
        periods = PeriodKeys.at(now, tz)
        spent_keys = layout.spent(org_id, periods)
        ends = (periods.day_end_ms, periods.week_end_ms, periods.month_end_ms)
        pipe = client.pipeline(transaction=True)
        for period, key, end_ms in zip((Period.DAILY, Period.WEEKLY, Period.MONTHLY), spent_keys, ends, strict=True):
            start, end = period_bounds(now, period, tz)
            sql, params = queries.spend_by_scopes(database, org_id, start, end)
            rows = store.query(sql, params)
            pipe.delete(key)
            if rows:
                pipe.hset(key, mapping={scope: int(cost) for scope, cost in rows})
                pipe.expireat(key, end_ms // 1000 + SPENT_RETENTION_S)
            counters += len(rows)
        pipe.execute()
        progress(f"{org_id}: {tz}, day {periods.day}, week {periods.week}, month {periods.month}")

    sql, params = queries.usage_watermarks_by_org(database)
    pipe = client.pipeline(transaction=False)
    for org_id, partition, offset in store.query(sql, params):
        pipe.hset(layout.watermarks(org_id), str(partition), int(offset))
    pipe.execute()

    fingerprints = 0
    expire_at = int(now.timestamp()) + DUPLICATE_WINDOW_S
    rows = store.query(*queries.ingested_since(database, now - timedelta(seconds=DUPLICATE_WINDOW_S)))
    pipe = client.pipeline(transaction=False)
    for org_id, event_id, occurred_at, partition, offset in rows:
        print_ = fingerprint(event_id)
        key = layout.seen(org_id, occurred_at, print_)
        pipe.hsetnx(key, print_, f"{partition}:{offset}")
        pipe.expireat(key, expire_at)
        fingerprints += 1
        if fingerprints % 10_000 == 0:
            pipe.execute()
    pipe.execute()
    progress(f"duplicate window: {fingerprints} fingerprints")
    return RebuildReport(len(orgs), counters, budgets, fingerprints)
