"""What the console's pages and API show, read from ClickHouse and the config topic for one principal.

Every figure is narrowed to what the principal may see: the org always comes from the principal, and
a department manager sees only their departments (and the users whose spend is counted there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bus.config_topic import ConfigCache
from console.budget_edit import budget_view
from console.roles import Principal
from schemas.budgets import Budget, OrgConfig, Period, ScopeKind, period_bounds, period_key
from schemas.errors import ForbiddenError
from sinks import queries, report_queries
from sinks.queries import ClickHouseReader, Narrow, Query

__all__ = ["BudgetProgress", "Overview", "Reader"]

_ANY = "*"
_RAW_SCOPES = (ScopeKind.API_KEY, ScopeKind.TAG)  # budgets the hourly rollup cannot tell apart


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
    def __init__(
        self,
        store: ClickHouseReader,
        config: ConfigCache,
        open_incidents: Callable[[str], dict[Any, Any]] = lambda org_id: {},
    ) -> None:
        self.store = store
        self.config = config
        self._open_incidents = open_incidents  # an org's open PagerDuty incidents (from Redis)

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
        rows = self.store.query(*report_queries.user_departments(self.db, org_id, now - timedelta(days=62)))
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
        """Admin > Billing. Its queries are independent and run at once (ClickHouse serves them in parallel)."""
        now = now or datetime.now(UTC)
        org = self.org(principal)
        department = self.department_for(principal, asked_department)
        start, end = period_bounds(now, Period.MONTHLY, org.timezone)
        narrow = Narrow(department=department)
        hour_end = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        db, org_id = self.db, org.org_id
        budgets = self.visible_budgets(principal, now, department)
        asks: dict[str, Query] = {  # the totals are the models' sum, and the drivers' shares are taken from it
            "forecasts": queries.latest_forecasts(db, org_id),
            "daily": queries.series(db, org_id, "day", hour_end - timedelta(days=31), hour_end, org.timezone, narrow),
            "models": queries.spend_by(db, "model", org_id, start, hour_end, narrow),
            "drivers": queries.top_cost_drivers(db, org_id, start, hour_end, 10, narrow=narrow, with_share=False),
        }
        if budgets:
            asks["budgets"] = self._budget_query(budgets, org, now)
        if principal.sees_department(_ANY):  # alerts and spikes are org-wide: a manager sees their budgets' only
            since = now - timedelta(days=31)
            asks["alerts"] = report_queries.recent_alerts(db, org_id, since, 10)
            asks["spikes"] = report_queries.recent_spikes(db, org_id, since, 10)
        rows = self.all_at_once(asks)
        models = rows["models"]
        total = sum(int(r[7]) for r in models)
        requests = sum(int(r[1]) for r in models)
        tokens = sum(int(sum(r[2:7])) for r in models)
        forecasts = _forecast_rows(rows["forecasts"])
        scope = f"org/{org_id}" if department == _ANY else f"department/{department}"
        overview = Overview(
            org_id,
            department,
            org.timezone,
            period_key(now, Period.MONTHLY, org.timezone),
            start,
            end,
            int(total or 0),
            int(requests or 0),
            int(tokens or 0),
            forecasts.get((scope, "monthly")),
        )
        if budgets:
            overview.budgets = self._progress(budgets, org, now, rows["budgets"], forecasts)
        overview.daily = [
            {"day": row[0].isoformat(), "cost_nanos": int(row[7]), "requests": int(row[1])} for row in rows["daily"]
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
            for row in models
        ]
        overview.drivers = [
            {
                "user": r[0],
                "model": r[1],
                "feature": r[2],
                "cost_nanos": int(r[3]),
                "requests": int(r[4]),
                "share": int(r[3]) / overview.total_nanos if overview.total_nanos else 0.0,  # of the total shown
            }
            for r in rows["drivers"]
        ]
        overview.alerts = [
            dict(zip(_ALERT_FIELDS, r[: len(_ALERT_FIELDS)], strict=True)) for r in rows.get("alerts", [])
        ]
        overview.spikes = [
            dict(zip(_SPIKE_FIELDS, r[: len(_SPIKE_FIELDS)], strict=True)) for r in rows.get("spikes", [])
        ]
        return overview

    def all_at_once(self, asks: dict[str, Query]) -> dict[str, list[tuple[Any, ...]]]:
        """Run independent queries concurrently; their rows by name."""
        return dict(zip(asks, _POOL.map(lambda q: self.store.query(*q), asks.values()), strict=True))

    def forecasts(self, org_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        return _forecast_rows(self.store.query(*queries.latest_forecasts(self.db, org_id)))

    def _budget_query(self, budgets: list[Budget], org: OrgConfig, now: datetime) -> Query:
        """Each budget's spend in its current period: one scan of the hourly rollup (of the raw events when
        an API-key or tag budget is among them, which the rollup cannot tell apart)."""
        end = now + timedelta(days=1)
        if any(b.scope in _RAW_SCOPES for b in budgets):
            day, week, month = (period_bounds(now, p, org.timezone)[0] for p in Period)
            return queries.period_spend_by_scopes(self.db, org.org_id, day, week, month, end)
        starts = [(b.scope.value, b.scope_id, period_bounds(now, b.period, org.timezone)[0]) for b in budgets]
        return report_queries.budget_spend(self.db, org.org_id, starts, end)

    def _progress(
        self,
        budgets: list[Budget],
        org: OrgConfig,
        now: datetime,
        rows: list[tuple[Any, ...]],
        forecasts: dict[tuple[str, str], dict[str, Any]],
    ) -> list[BudgetProgress]:
        if any(b.scope in _RAW_SCOPES for b in budgets):  # rows of period_spend_by_scopes
            by_scope = {str(r[0]): {"daily": int(r[1]), "weekly": int(r[2]), "monthly": int(r[3])} for r in rows}
            spent = [by_scope.get(f"{b.scope.value}/{b.scope_id}", {}).get(b.period.value, 0) for b in budgets]
        else:  # one row, a sum per budget
            spent = [int(v) for v in rows[0]]
        progress = []
        for budget, amount in zip(budgets, spent, strict=True):
            key = period_key(now, budget.period, org.timezone)
            forecast = forecasts.get((f"{budget.scope.value}/{budget.scope_id}", budget.period.value))
            fits = forecast if forecast and forecast["period_key"] == key else None
            progress.append(BudgetProgress(budget_view(budget), key, amount, fits))
        return progress

    def incidents(self, principal: Principal) -> list[dict[str, Any]] | None:
        """The org's open PagerDuty incidents (they clear when their budget's spend does); None when Redis,
        which keeps them, cannot be read."""
        try:
            found = self._open_incidents(principal.org_id)
        except Exception:  # noqa: BLE001 - Redis away: the page says so instead of failing
            return None
        out = []
        for key, value in sorted(found.items()):
            incident = json.loads(value)
            out.append({"alert": key.decode() if isinstance(key, bytes) else str(key), **incident})
        return out

    def alerts(self, principal: Principal, now: datetime, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.store.query(
            *report_queries.recent_alerts(self.db, principal.org_id, now - timedelta(days=31), limit)
        )
        return [_named(_ALERT_FIELDS, row) for row in rows]

    def spikes(self, principal: Principal, now: datetime, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.store.query(
            *report_queries.recent_spikes(self.db, principal.org_id, now - timedelta(days=31), limit)
        )
        return [_named(_SPIKE_FIELDS, row) for row in rows]


_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="console-query")
_ALERT_FIELDS = ("at", "kind", "scope", "period_key", "stage", "channel", "channel_type", "target", "outcome")
_SPIKE_FIELDS = (
    "bucket",
    "bucket_seconds",
    "entity",
    "observed_nanos",
    "expected_nanos",
    "ratio",
    "score",
    "driver",
    "driver_share",
)


def _forecast_rows(rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for scope, period, key, spent, p10, p50, p90, budget, chance, runout, made in rows:
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


def _named(names: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(names, row[: len(names)], strict=True))
