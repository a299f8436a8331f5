"""What an alert's message says beyond the alert itself: the limit and spend a redelivered crossing
lacks (from Redis), and the top cost drivers of the budget's scope (from ClickHouse, one query per org,
period and scope kind for a whole batch)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import msgspec

from alerting.plan import budget_of
from enforcement.keys import KeyLayout, PeriodKeys
from schemas.alerts import Alert, BudgetStage, CapDenied, ProjectedExceed
from schemas.budgets import Budget, ScopeKind, period_bounds
from schemas.config_records import ConfigState
from sinks.queries import top_cost_drivers_by_scope
from sinks.usage_store import UsageStore

__all__ = ["Enricher"]

log = logging.getLogger("spendstream.alerts")

_WITH_DRIVERS = (BudgetStage, CapDenied, ProjectedExceed)


class Enricher:
    def __init__(self, redis: Any, layout: KeyLayout, config: ConfigState, store: UsageStore) -> None:
        self.redis = redis
        self.layout = layout
        self.config = config
        self.store = store

    async def enrich(self, alerts: list[Alert]) -> list[Alert]:
        """Fill what a message needs: the limit and spend a redelivered crossing lacks, the top cost drivers."""
        budgets = [budget_of(alert, self.config.budgets) for alert in alerts]
        drivers = await self._drivers(alerts, budgets)
        out = []
        for alert, budget, found in zip(alerts, budgets, drivers, strict=True):
            changes: dict[str, Any] = {}
            if budget is not None and isinstance(alert, _WITH_DRIVERS) and not alert.limit_nanos:
                changes["limit_nanos"] = budget.limit_nanos
                spent = await self.spent(budget, _when(alert))
                if spent is not None:
                    changes["spent_nanos"] = spent
            if found is not None:
                changes["drivers"] = found
            out.append(msgspec.structs.replace(alert, **changes) if changes else alert)
        return out

    async def spent(self, budget: Budget, when: datetime) -> int | None:
        """What Redis counts for the budget's scope in its period at ``when`` (None: nothing yet)."""
        key = self.layout.spent_in(budget.org_id, PeriodKeys.at(when, budget.timezone), budget.period)
        value = await self.redis.hget(key, f"{budget.scope.value}/{budget.scope_id}")
        return int(value) if value is not None else None

    async def _drivers(self, alerts: list[Alert], budgets: list[Budget | None]) -> list[list[dict[str, Any]] | None]:
        """Top cost drivers per alert (None where the alert needs none), one query per org, period and kind.

        They come from ClickHouse, which trails Redis by up to the sink interval (1 s): the event that
        crossed a stage may not be in them yet."""
        wanted: dict[tuple[str, datetime, datetime, str], set[str]] = {}
        keys: list[tuple[tuple[str, datetime, datetime, str], str] | None] = []
        for alert, budget in zip(alerts, budgets, strict=True):
            if (
                budget is None
                or alert.drivers
                or not isinstance(alert, _WITH_DRIVERS)
                or budget.scope in (ScopeKind.API_KEY, ScopeKind.TAG)  # no rollup dimension to rank drivers by
            ):
                keys.append(None)
                continue
            start, end = period_bounds(_when(alert), budget.period, budget.timezone)
            group = (alert.org_id, start, end, budget.scope.value)
            wanted.setdefault(group, set()).add(budget.scope_id)
            keys.append((group, budget.scope_id))
        found: dict[tuple[tuple[str, datetime, datetime, str], str], list[dict[str, Any]]] = {}
        for group, ids in wanted.items():
            org_id, start, end, kind = group
            sql, params = top_cost_drivers_by_scope(self.store.database, org_id, start, end, kind, sorted(ids), 3)
            try:
                rows = await asyncio.wait_for(asyncio.to_thread(self.store.query, sql, params), 2.0)
            except Exception as exc:  # noqa: BLE001 - a message without drivers beats no message
                log.warning("top cost drivers of %s not read: %s", org_id, exc)
                continue
            for scope_id, user, model, feature, cost, _, share in rows:
                found.setdefault((group, scope_id), []).append(
                    {
                        "user_id": user,
                        "model": model,
                        "feature": feature,
                        "cost_nanos": int(cost),
                        "share": float(share),
                    }
                )
        return [None if key is None else found.get(key, []) for key in keys]


def _when(alert: Alert) -> datetime:
    occurred = alert.occurred_at if isinstance(alert, BudgetStage) else None
    text = occurred or alert.detected_at
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
