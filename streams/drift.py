"""Drift between the live counters in Redis and the events in ClickHouse, measured in one place.

For every org, the month-to-date spend that Redis holds for ``org/<org>`` minus the sum of that
month's events in ClickHouse, in nano-USD. Zero when both agree; ClickHouse trails Redis by up to
one sink interval, so a short-lived difference under load is expected and a lasting one is not.
``spendstream drift`` prints it (and exits 1 when any org drifts) with :func:`measure_drift`; the
worker's health timer sets ``spendstream_spend_drift_nanos`` with :func:`measure_drift_async`. Both
read the same keys and the same query, planned by :func:`_plan`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from enforcement.keys import KeyLayout, PeriodKeys
from schemas.budgets import OrgConfig, Period, period_bounds
from schemas.config_records import ConfigState
from sinks import queries
from sinks.usage_store import UsageStore

__all__ = ["measure_drift", "measure_drift_async", "org_zones"]


def org_zones(store: UsageStore, config: ConfigState, now: datetime | None = None) -> dict[str, str]:
    """Every org to look at, with its time zone: those with usage in the last 31 days, and those configured."""
    since = (now or datetime.now(UTC)) - timedelta(days=31)
    orgs = {row[0] for row in store.query(*queries.orgs_since(store.database, since))} | set(config.orgs)
    return {org: config.orgs.get(org, OrgConfig(org)).timezone for org in sorted(orgs)}


@dataclass(frozen=True, slots=True)
class _Reading:
    org_id: str
    key: str  # the org's monthly spend hash
    field: str
    sql: str
    params: dict[str, Any]


def _plan(store: UsageStore, layout: KeyLayout, zones: dict[str, str], now: datetime) -> Iterator[_Reading]:
    for org_id, timezone in sorted(zones.items()):
        start, end = period_bounds(now, Period.MONTHLY, timezone)
        sql, params = queries.org_spend(store.database, org_id, start, end)
        yield _Reading(
            org_id, layout.spent_in(org_id, PeriodKeys.at(now, timezone), Period.MONTHLY), f"org/{org_id}", sql, params
        )


def _difference(in_redis: Any, rows: list[tuple[Any, ...]]) -> int:
    return int(in_redis or 0) - (int(rows[0][0] or 0) if rows else 0)


def measure_drift(
    redis_client: Any, store: UsageStore, layout: KeyLayout, zones: dict[str, str], now: datetime | None = None
) -> dict[str, int]:
    """Redis minus ClickHouse, per org, for the org's current month (cut in its time zone)."""
    now = now or datetime.now(UTC)
    return {
        r.org_id: _difference(redis_client.hget(r.key, r.field), store.query(r.sql, r.params))
        for r in _plan(store, layout, zones, now)
    }


async def measure_drift_async(
    redis_client: Any, store: UsageStore, layout: KeyLayout, zones: dict[str, str], now: datetime | None = None
) -> dict[str, int]:
    """:func:`measure_drift` on an asyncio Redis client, ClickHouse off the event loop."""
    now = now or datetime.now(UTC)
    drift = {}
    for r in _plan(store, layout, zones, now):
        in_redis = await redis_client.hget(r.key, r.field)
        drift[r.org_id] = _difference(in_redis, await asyncio.to_thread(store.query, r.sql, r.params))
    return drift
