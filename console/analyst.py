"""Cost analysis, usage patterns and forecasts for one principal, read from ClickHouse.

Like :mod:`console.readmodels`, every view is narrowed to what the principal may see: a department
manager's filters are pinned to their departments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from console.readmodels import Reader
from console.roles import Principal
from reports.filters import CostFilter
from schemas.allocation_tags import UNTAGGED
from sinks import queries
from sinks.label_queries import API_KEY
from sinks.tables import TYPE_COSTS

__all__ = ["Analyst", "CostView", "PatternView"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(slots=True)
class CostView:
    filter: CostFilter
    total_nanos: int = 0
    requests: int = 0
    tokens: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per value of the group
    series: list[dict[str, Any]] = field(default_factory=list)  # one per day, week or month


@dataclass(slots=True)
class PatternView:
    filter: CostFilter
    heatmap: list[dict[str, Any]] = field(default_factory=list)  # weekday x hour
    weekdays: list[dict[str, Any]] = field(default_factory=list)
    trend: list[dict[str, Any]] = field(default_factory=list)  # weekly cost, with change on the week before
    adoption: list[dict[str, Any]] = field(default_factory=list)  # active users per feature and week
    spikes: list[dict[str, Any]] = field(default_factory=list)


def _totals_row(key: str, row: Sequence[Any]) -> dict[str, Any]:
    """A group's or a period's totals (a row of :data:`sinks.queries.TOTALS`), its cost split by token type;
    ``unsplit_cost_nanos`` is what no type holds (costs the proxy reported, events rated before the split)."""
    by_type = {name: int(row[8 + i]) for i, name in enumerate(TYPE_COSTS)}
    return {
        "key": key,
        "requests": int(row[1]),
        "input_tokens": int(row[2]),
        "output_tokens": int(row[3]),
        "tokens": int(sum(row[2:7])),
        "cost_nanos": int(row[7]),
        **by_type,
        "unsplit_cost_nanos": int(row[7]) - sum(by_type.values()),
    }


_SUMMED = ("requests", "input_tokens", "output_tokens", "tokens", "cost_nanos", *TYPE_COSTS, "unsplit_cost_nanos")
NO_KEY = "(no key)"


def _unlabelled(rows: list[dict[str, Any]], series: list[dict[str, Any]], missing: str) -> list[dict[str, Any]]:
    """Rows by label, with spend that has no value (no API key; stored before the tag was declared, so not in
    the label rollup) under ``missing``: the rows then add up to the same total as any other grouping."""
    kept = [row for row in rows if row["key"] not in ("", missing)]
    rest = {name: sum(r[name] for r in series) - sum(r[name] for r in kept) for name in _SUMMED}
    if any(rest.values()):
        kept.append({"key": missing, **rest})
    return sorted(kept, key=lambda row: (-row["cost_nanos"], row["key"]))


class Analyst:
    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    @property
    def db(self) -> str:
        return self.reader.db

    def pinned(self, principal: Principal, wanted: CostFilter) -> CostFilter:
        """The filter with the department the principal may see (a manager's own, when none is given)."""
        asked = None if wanted.department == "*" else wanted.department
        return replace(wanted, department=self.reader.department_for(principal, asked))

    def costs(self, principal: Principal, wanted: CostFilter) -> CostView:
        f = self.pinned(principal, wanted)
        org = principal.org_id
        view = CostView(f)
        rows = self.reader.all_at_once(
            {
                "rows": f.spend(self.db, org),
                "series": queries.series(self.db, org, f.granularity, f.start, f.end, f.timezone, f.narrow()),
            }
        )
        view.rows = [_totals_row(str(row[0]), row) for row in rows["rows"]]
        view.series = [_totals_row(row[0].isoformat(), row) for row in rows["series"]]
        if f.by_label:
            view.rows = _unlabelled(view.rows, view.series, NO_KEY if f.group == API_KEY else UNTAGGED)
        view.total_nanos = sum(r["cost_nanos"] for r in view.rows)
        view.requests = sum(r["requests"] for r in view.rows)
        view.tokens = sum(r["tokens"] for r in view.rows)
        return view

    def patterns(self, principal: Principal, wanted: CostFilter) -> PatternView:
        f = self.pinned(principal, wanted)
        org = principal.org_id
        view = PatternView(f)
        by_weekday = {d: {"requests": 0, "cost_nanos": 0} for d in range(1, 8)}
        for weekday, hour, requests, cost in self.reader.store.query(
            *queries.peak_hours(self.db, org, f.start, f.end, f.timezone, f.narrow())
        ):
            view.heatmap.append(
                {
                    "weekday": WEEKDAYS[weekday - 1],
                    "hour": int(hour),
                    "requests": int(requests),
                    "cost_nanos": int(cost),
                }
            )
            by_weekday[weekday]["requests"] += int(requests)
            by_weekday[weekday]["cost_nanos"] += int(cost)
        view.weekdays = [{"weekday": WEEKDAYS[d - 1], **v} for d, v in by_weekday.items()]
        weekly = self.reader.store.query(*queries.series(self.db, org, "week", f.start, f.end, f.timezone, f.narrow()))
        previous = None
        for row in weekly:
            cost = int(row[7])
            change = (cost - previous) / previous if previous else None
            view.trend.append(
                {"week": row[0].isoformat(), "cost_nanos": cost, "requests": int(row[1]), "change": change}
            )
            previous = cost
        for feature, week, users, requests in self.reader.store.query(
            *queries.feature_adoption(self.db, org, f.start, f.end, f.narrow(), f.timezone)
        ):
            day = week if isinstance(week, date) else week.date()
            view.adoption.append(
                {"feature": feature, "week": day.isoformat(), "users": int(users), "requests": int(requests)}
            )
        view.spikes = [s for s in self.reader.spikes(principal, datetime.now(UTC), 50) if _sees(principal, s["entity"])]
        return view

    def forecasts(self, principal: Principal) -> list[dict[str, Any]]:
        """The newest projection of every scope and period the principal sees, costliest first."""
        now = datetime.now(UTC)
        homes = None if principal.sees_department("*") else self.reader.user_departments(principal.org_id, now)
        budgets = {
            f"{b.scope.value}/{b.scope_id}/{b.period.value}": b for b in self.reader.visible_budgets(principal, now)
        }
        rows = []
        for (scope, period), forecast in self.reader.forecasts(principal.org_id).items():
            if homes is not None and not _manager_sees(principal, scope, homes):
                continue
            if datetime.fromisoformat(forecast["made_at"]) < now - timedelta(days=2):
                continue  # a scope no longer projected
            budget = budgets.get(f"{scope}/{period}")
            rows.append({"scope": scope, "period": period, **forecast, "mode": budget.mode.value if budget else None})
        return sorted(rows, key=lambda r: (-r["p50_nanos"], r["scope"], r["period"]))


def _sees(principal: Principal, entity: str) -> bool:
    if principal.sees_department("*"):
        return True
    kind, _, ident = entity.partition("/")
    return kind == "department" and ident in principal.departments


def _manager_sees(principal: Principal, scope: str, homes: dict[str, str]) -> bool:
    kind, _, ident = scope.partition("/")
    if kind == "department":
        return ident in principal.departments
    return kind == "user" and homes.get(ident) in principal.departments
