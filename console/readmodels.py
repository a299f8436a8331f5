"""What the console's pages and API show, read from ClickHouse and the config topic for one principal.

Every figure is narrowed to what the principal may see: the org always comes from the principal, and
a department manager sees only their departments (and the users whose spend is counted there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from console.budget_edit import ForbiddenError, budget_view
from console.config_cache import ConfigCache
from console.roles import Principal
from schemas.budgets import Budget, OrgConfig, Period, ScopeKind, period_bounds, period_key
from sinks import analysis, queries
from sinks.queries import Narrow
from sinks.usage_store import UsageStore

__all__ = ["BudgetProgress", "Overview", "Reader"]

_ANY = "*"


@dataclass(frozen=True, slots=True)
class BudgetProgress:
    budget: dict[str, Any]
    period_key: str
    spent_nanos: int
    forecast: dict[str, Any] | None  # p10/p50/p90, chance over, run-out date: the insights' latest


@dataclass(slots=True)
class Overview:
    org_id: str
    department: str  # "*": every department the principal sees
    timezone: str
    month: str
    start: datetime
    end: datetime
    total_nanos: int
    requests: int
    tokens: int
    forecast: dict[str, Any] | None
    budgets: list[BudgetProgress] = field(default_factory=list)
    daily: list[dict[str, Any]] = field(default_factory=list)
    by_model: list[dict[str, Any]] = field(default_factory=list)
    drivers: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    spikes: list[dict[str, Any]] = field(default_factory=list)


class Reader:
    def __init__(self, store: UsageStore, config: ConfigCache) -> None:
        self.store = store
        self.config = config

    @property
    def db(self) -> str:
        return self.store.database

    def org(self, principal: Principal) -> OrgConfig:
        return self.config.state().orgs.get(principal.org_id, OrgConfig(principal.org_id))

    def department_for(self, principal: Principal, asked: str | None) -> str:
        """The department a view is narrowed to: what was asked, if the principal may see it; a manager
        without a choice gets their first department."""
        if not asked or asked == _ANY:
            return _ANY if principal.sees_department(_ANY) else principal.departments[0]
        if not principal.sees_department(asked):
            raise ForbiddenError("department", f"you cannot see department {asked!r}")
        return asked

    def user_departments(self, org_id: str, now: datetime) -> dict[str, str]:
        rows = self.store.query(*analysis.user_departments(self.db, org_id, now - timedelta(days=62)))
        return {str(user): str(department) for user, department in rows}

    def visible_budgets(self, principal: Principal, now: datetime, department: str = _ANY) -> list[Budget]:
        budgets = [b for b in self.config.state().budgets.values() if b.org_id == principal.org_id]
        if department == _ANY and principal.sees_department(_ANY):
            return sorted(budgets, key=lambda b: b.key)
        allowed = set(principal.departments) if department == _ANY else {department}
        homes = self.user_departments(principal.org_id, now)
        return sorted(
            (
                b
                for b in budgets
                if (b.scope is ScopeKind.DEPARTMENT and b.scope_id in allowed)
                or (b.scope is ScopeKind.USER and homes.get(b.scope_id) in allowed)
            ),
            key=lambda b: b.key,
        )

    def overview(self, principal: Principal, asked_department: str | None, now: datetime | None = None) -> Overview:
        now = now or datetime.now(UTC)
        org = self.org(principal)
        department = self.department_for(principal, asked_department)
        start, end = period_bounds(now, Period.MONTHLY, org.timezone)
        narrow = Narrow(department=department)
        total, requests, tokens = self.store.query(*analysis.usage_totals(self.db, org.org_id, start, end, department))[
            0
        ]
        hour_start = start.replace(minute=0, second=0, microsecond=0)
        hour_end = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        forecasts = self._forecasts(org.org_id)
        overview = Overview(
            org.org_id,
            department,
            org.timezone,
            period_key(now, Period.MONTHLY, org.timezone),
            start,
            end,
            int(total or 0),
            int(requests or 0),
            int(tokens or 0),
            forecasts.get((f"org/{org.org_id}" if department == _ANY else f"department/{department}", "monthly")),
        )
        overview.budgets = self._progress(principal, org, now, department, forecasts)
        daily_start = hour_start - timedelta(days=30)
        overview.daily = [
            {"day": row[0].isoformat(), "cost_nanos": int(row[7]), "requests": int(row[1])}
            for row in self.store.query(
                *queries.series(self.db, org.org_id, "day", daily_start, hour_end, org.timezone, narrow)
            )
        ]
        overview.by_model = [
            {
                "model": row[0],
                "requests": int(row[1]),
                "input_tokens": int(row[2]),
                "output_tokens": int(row[3]),
                "tokens": int(sum(row[2:7])),
                "cost_nanos": int(row[7]),
            }
            for row in self.store.query(*queries.spend_by(self.db, "model", org.org_id, hour_start, hour_end, narrow))
        ]
        overview.drivers = [
            {
                "user": r[0],
                "model": r[1],
                "feature": r[2],
                "cost_nanos": int(r[3]),
                "requests": int(r[4]),
                "share": r[5],
            }
            for r in self.store.query(
                *queries.top_cost_drivers(self.db, org.org_id, hour_start, hour_end, 10, narrow=narrow)
            )
        ]
        if principal.sees_department(_ANY):  # alerts and spikes are org-wide: a manager sees their budgets' only
            overview.alerts = self.alerts(principal, now, limit=10)
            overview.spikes = self.spikes(principal, now, limit=10)
        return overview

    def _forecasts(self, org_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for scope, period, key, spent, p10, p50, p90, budget, chance, runout, made in self.store.query(
            *queries.latest_forecasts(self.db, org_id)
        ):
            out[(scope, period)] = {
                "period_key": key,
                "spent_nanos": int(spent),
                "p10_nanos": int(p10),
                "p50_nanos": int(p50),
                "p90_nanos": int(p90),
                "budget_nanos": int(budget),
                "chance_over": float(chance),
                "runout_date": runout.isoformat() if isinstance(runout, date) else None,
                "made_at": made.isoformat(),
            }
        return out

    def _progress(
        self,
        principal: Principal,
        org: OrgConfig,
        now: datetime,
        department: str,
        forecasts: dict[tuple[str, str], dict[str, Any]],
    ) -> list[BudgetProgress]:
        budgets = self.visible_budgets(principal, now, department)
        if not budgets:
            return []
        day, week, month = (
            period_bounds(now, p, org.timezone)[0] for p in (Period.DAILY, Period.WEEKLY, Period.MONTHLY)
        )
        rows = self.store.query(
            *queries.period_spend_by_scopes(self.db, org.org_id, day, week, month, now + timedelta(days=1))
        )
        spent = {str(r[0]): {"daily": int(r[1]), "weekly": int(r[2]), "monthly": int(r[3])} for r in rows}
        progress = []
        for budget in budgets:
            scope = f"{budget.scope.value}/{budget.scope_id}"
            key = period_key(now, budget.period, org.timezone)
            forecast = forecasts.get((scope, budget.period.value))
            progress.append(
                BudgetProgress(
                    budget_view(budget),
                    key,
                    spent.get(scope, {}).get(budget.period.value, 0),
                    forecast if forecast and forecast["period_key"] == key else None,
                )
            )
        return progress

    def alerts(self, principal: Principal, now: datetime, limit: int = 50) -> list[dict[str, Any]]:
        names = ("at", "kind", "scope", "period_key", "stage", "channel", "channel_type", "target", "outcome")
        rows = self.store.query(*analysis.recent_alerts(self.db, principal.org_id, now - timedelta(days=31), limit))
        return [dict(zip(names, row[: len(names)], strict=True)) for row in rows]

    def spikes(self, principal: Principal, now: datetime, limit: int = 20) -> list[dict[str, Any]]:
        names = ("bucket", "bucket_seconds", "entity", "observed_nanos", "expected_nanos", "ratio", "score", "driver")
        rows = self.store.query(*analysis.recent_spikes(self.db, principal.org_id, now - timedelta(days=31), limit))
        return [dict(zip(names, row[: len(names)], strict=True)) for row in rows]
