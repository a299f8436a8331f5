"""Drift between the live counters in Redis and the events in ClickHouse.

For every org, the month-to-date spend that Redis holds for ``org/<org>`` minus the sum of that
month's events in ClickHouse, in nano-USD. Zero when both agree; ClickHouse trails Redis by up to
one sink interval, so a short-lived difference under load is expected and a lasting one is not.
``spendstream drift`` prints it and exits 1 when any org drifts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from enforcement.keys import KeyLayout, PeriodKeys
from schemas.budgets import Period, period_bounds
from sinks import queries
from sinks.usage_store import UsageStore

__all__ = ["measure_drift"]


def measure_drift(
    redis_client: Any, store: UsageStore, layout: KeyLayout, timezones: dict[str, str], now: datetime | None = None
) -> dict[str, int]:
    """Redis minus ClickHouse, per org, for the org's current month (cut in its time zone)."""
    now = now or datetime.now(UTC)
    drift: dict[str, int] = {}
    for org_id, timezone in sorted(timezones.items()):
        monthly_key = layout.spent(org_id, PeriodKeys.at(now, timezone))[2]
        in_redis = int(redis_client.hget(monthly_key, f"org/{org_id}") or 0)
        start, end = period_bounds(now, Period.MONTHLY, timezone)
        rows = store.query(*queries.org_spend(store.database, org_id, start, end))
        in_clickhouse = int(rows[0][0] or 0) if rows else 0
        drift[org_id] = in_redis - in_clickhouse
    return drift
