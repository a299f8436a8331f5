"""The monthly usage summary of an org (pure): totals and the month before, by department, model,
provider and feature, top users, cost per day, next month's forecast with its interval, budgets
against actuals, and the alerts raised."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from reports import charts
from reports.model import Chart, Column, Figure, Kind, Report, Section, Table
from schemas.money import format_usd

__all__ = ["BudgetActual", "MonthlyData", "monthly_report"]

Totals = tuple[str, int, int, int]  # key, requests, tokens, cost nano-USD

_TOTALS_COLUMNS = (
    Column("requests", "Requests", Kind.INT, total=True),
    Column("tokens", "Tokens", Kind.INT, total=True),
    Column("cost", "Cost", Kind.USD, total=True),
    Column("share", "Share", Kind.PCT),
)


@dataclass(frozen=True, slots=True)
class BudgetActual:
    key: str  # department/eng/monthly
    mode: str
    limit_nanos: int
    spent_nanos: int  # monthly: the month's spend; daily and weekly: the highest period's
    periods: int  # periods of the month (1 for a monthly budget)
    periods_over: int  # of them, how many went over the limit


@dataclass(slots=True)
class MonthlyData:
    org_id: str
    month: date  # its first day
    timezone: str
    generated_at: datetime
    by_department: list[Totals] = field(default_factory=list)
    by_model: list[Totals] = field(default_factory=list)
    by_provider: list[Totals] = field(default_factory=list)
    by_feature: list[Totals] = field(default_factory=list)
    top_users: list[Totals] = field(default_factory=list)
    daily: list[tuple[date, int]] = field(default_factory=list)
    previous_cost: int = 0
    previous_requests: int = 0
    forecast: tuple[float, float, float] | None = None  # next month P10, P50, P90 (nano-USD)
    budgets: list[BudgetActual] = field(default_factory=list)
    alerts: list[tuple[Any, ...]] = field(default_factory=list)  # at, kind, scope, period_key, stage, channel, outcome


def _breakdown(name: str, title: str, label: str, rows: list[Totals], total: int, total_label: str = "Total") -> Table:
    body = [
        (key or "(none)", requests, tokens, cost, cost / total if total else 0.0)
        for key, requests, tokens, cost in rows
    ]
    return Table(name, title, (Column(name, label), *_TOTALS_COLUMNS), body, total_label=total_label)


def monthly_report(data: MonthlyData) -> Report:
    total = sum(cost for *_, cost in data.by_department)
    requests = sum(r for _, r, _, _ in data.by_department)
    tokens = sum(t for _, _, t, _ in data.by_department)
    change = (total - data.previous_cost) / data.previous_cost if data.previous_cost else None
    last = _last_day(data.month)
    figures = [
        Figure("Cost this month", total),
        Figure("Requests", requests, Kind.INT),
        Figure("Tokens", tokens, Kind.INT),
        Figure(
            "Against the month before",
            change,
            Kind.PCT,
            f"{format_usd(data.previous_cost)} then" if data.previous_cost else "no spend the month before",
        ),
    ]
    if data.forecast:
        p10, p50, p90 = data.forecast
        figures.append(
            Figure(
                "Next month (forecast)",
                round(p50),
                Kind.USD,
                f"P10-P90 {format_usd(round(p10))} to {format_usd(round(p90))}",
            )
        )
    sections = [
        Section(
            "Where the money went",
            text="Cost per day of the month, and by department.",
            charts=(
                Chart(
                    "Cost per day", charts.daily_spend([{"day": d.isoformat(), "cost_nanos": c} for d, c in data.daily])
                ),
            ),
            tables=(_breakdown("department", "By department", "Department", data.by_department, total),),
        ),
        Section(
            "Models, providers and features",
            tables=(
                _breakdown("model", "By model", "Model", data.by_model, total),
                _breakdown("provider", "By provider", "Provider", data.by_provider, total),
                _breakdown("feature", "By feature", "Feature", data.by_feature, total),
            ),
        ),
        Section(
            "Top users",
            tables=(
                _breakdown(
                    "user",
                    "The costliest users",
                    "User",
                    data.top_users,
                    total,
                    f"Total of these {len(data.top_users)}",
                ),
            ),
        ),
        Section("Budgets against actuals", tables=(_budgets(data.budgets),)),
        Section(
            "Alerts raised", text=_alert_summary(data.alerts), tables=(_alerts(data.alerts),) if data.alerts else ()
        ),
    ]
    return Report(
        "monthly",
        "Monthly usage summary",
        data.org_id,
        data.month,
        last,
        data.timezone,
        data.generated_at,
        tuple(figures),
        tuple(sections),
    )


def _budgets(budgets: list[BudgetActual]) -> Table:
    columns = (
        Column("budget", "Budget"),
        Column("mode", "Mode"),
        Column("limit", "Limit", Kind.USD),
        Column("spent", "Spent (highest period)", Kind.USD),
        Column("used", "Used", Kind.PCT),
        Column("over", "Periods over"),
    )
    rows = [
        (b.key, b.mode, b.limit_nanos, b.spent_nanos, b.spent_nanos / b.limit_nanos, f"{b.periods_over} of {b.periods}")
        for b in budgets
    ]
    return Table(
        "budgets", "Budgets", columns, rows, "A daily or weekly budget shows its costliest period of the month."
    )


def _alerts(alerts: list[tuple[Any, ...]]) -> Table:
    columns = (
        Column("at", "When (UTC)"),
        Column("kind", "Alert"),
        Column("scope", "Scope"),
        Column("stage", "Stage", Kind.INT),
        Column("channel", "Channel"),
        Column("outcome", "Outcome"),
    )
    rows = [
        (f"{at:%Y-%m-%d %H:%M}", kind, scope, stage or None, channel, outcome)
        for at, kind, scope, _, stage, channel, outcome in alerts
    ]
    return Table("alerts", "Deliveries", columns, rows)


def _alert_summary(alerts: list[tuple[Any, ...]]) -> str:
    if not alerts:
        return "No alert was raised this month."
    counts: dict[str, int] = {}
    for _, kind, *_ in alerts:
        counts[kind] = counts.get(kind, 0) + 1
    parts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(counts.items()))
    return f"{len(alerts)} {'delivery' if len(alerts) == 1 else 'deliveries'}: {parts}."


def _last_day(first: date) -> date:
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return date.fromordinal(nxt.toordinal() - 1)
