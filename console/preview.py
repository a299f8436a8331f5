"""What a budget would have done over the last 30 days (pure): for each of its periods, the spend, the
day each alert stage would have fired, and how many requests a hard cap would have refused."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from schemas.budgets import Budget, BudgetMode, Period, period_bounds, period_key

__all__ = ["PREVIEW_DAYS", "PeriodPreview", "preview", "preview_window"]

PREVIEW_DAYS = 30


@dataclass(slots=True)
class PeriodPreview:
    period_key: str
    first_day: date
    spent_nanos: int = 0
    requests: int = 0
    stages: list[tuple[int, date]] = field(default_factory=list)  # (stage, the day it would have fired)
    denied: int | None = None  # a hard cap only: requests from the moment the cap was reached


def preview_window(budget: Budget, now: datetime) -> tuple[datetime, datetime]:
    """From the start of the period that held the day 30 days ago, to now: whole periods only."""
    start, _ = period_bounds(now - timedelta(days=PREVIEW_DAYS), budget.period, budget.timezone)
    return start, now


def _first_day(day: date, period: Period) -> date:
    if period is Period.WEEKLY:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTHLY:
        return day.replace(day=1)
    return day


def preview(
    budget: Budget, days: Iterable[tuple[date, int, int]], over_limit: Mapping[date, int]
) -> list[PeriodPreview]:
    """``days``: (day in the org's zone, cost, requests) in order; ``over_limit``: per period's first day, the
    requests that came once its spend passed the limit (see :func:`sinks.report_queries.requests_over_limit`)."""
    zone = ZoneInfo(budget.timezone)
    periods: dict[date, PeriodPreview] = {}
    for day, cost, requests in days:
        first = _first_day(day, budget.period)
        noon = datetime.combine(first, time(12), zone).astimezone(UTC)
        current = periods.setdefault(first, PeriodPreview(period_key(noon, budget.period, budget.timezone), first))
        before = current.spent_nanos
        current.spent_nanos += int(cost)
        current.requests += int(requests)
        current.stages += [(stage, day) for stage in budget.crossed_stages(before, current.spent_nanos)]
    if budget.mode is BudgetMode.HARD:
        for first, found in periods.items():
            found.denied = int(over_limit.get(first, 0))
    return sorted(periods.values(), key=lambda p: p.first_day)
