"""Reading what a report shows from ClickHouse (and the config topic's state), for one org and period."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from reports.chargeback import UNOWNED, ChargebackData
from reports.custom import CustomData
from reports.feature_roi import FeatureData, FeatureUsage
from reports.filters import CostFilter
from reports.model_value import ModelStats, ModelValueData
from reports.monthly import BudgetActual, MonthlyData
from schemas.allocation_tags import UNTAGGED
from schemas.budgets import Budget, OrgConfig, Period
from schemas.config_records import ConfigState
from schemas.cost_allocation import Chargeback
from sinks import queries, report_queries
from sinks.label_queries import spend_by_label
from sinks.queries import ClickHouseReader

__all__ = [
    "chargeback_data",
    "custom_data",
    "feature_data",
    "model_data",
    "month_bounds",
    "monthly_data",
]

HISTORY_DAYS = 120  # what the next month's forecast learns from


def month_bounds(month: date, timezone: str) -> tuple[datetime, datetime]:
    """The month's [start, end) in UTC, cut at midnights in ``timezone``."""
    zone = ZoneInfo(timezone)
    nxt = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    start = datetime(month.year, month.month, 1, tzinfo=zone).astimezone(UTC)
    return start, datetime(nxt.year, nxt.month, 1, tzinfo=zone).astimezone(UTC)


def _totals(rows: Sequence[tuple[Any, ...]]) -> list[tuple[str, int, int, int]]:
    return [(str(r[0]), int(r[1]), int(sum(r[2:7])), int(r[7])) for r in rows]


def monthly_data(store: ClickHouseReader, state: ConfigState, org_id: str, month: date, now: datetime) -> MonthlyData:
    org = state.orgs.get(org_id, OrgConfig(org_id))
    tz, db = org.timezone, store.database
    start, end = month_bounds(month, tz)
    data = MonthlyData(org_id, month, tz, now)
    for dimension, target in (
        ("department_id", data.by_department),
        ("model", data.by_model),
        ("provider", data.by_provider),
        ("feature", data.by_feature),
    ):
        target.extend(_totals(store.query(*queries.spend_by(db, dimension, org_id, start, end))))
    data.top_users = _totals(store.query(*queries.spend_by(db, "user_id", org_id, start, end)))[:15]
    data.daily = [(r[0], int(r[7])) for r in store.query(*queries.series(db, org_id, "day", start, end, tz))]
    previous = month_bounds(date.fromordinal(month.toordinal() - 1).replace(day=1), tz)
    for row in store.query(*queries.series(db, org_id, "month", previous[0], previous[1], tz)):
        data.previous_cost += int(row[7])
        data.previous_requests += int(row[1])
    data.forecast = _next_month(store, org_id, tz, month, end, now)
    org_budgets = sorted((b for b in state.budgets.values() if b.org_id == org_id), key=lambda b: b.key)
    data.budgets = [_actual(store, b, start, end) for b in org_budgets]
    data.alerts = store.query(*report_queries.alerts_between(db, org_id, start, end))
    return data


def _next_month(
    store: ClickHouseReader, org_id: str, tz: str, month: date, end: datetime, now: datetime
) -> tuple[float, float, float] | None:
    """P10, P50, P90 of next month's total, from the days learnt up to the month's end (or yesterday)."""
    since = end - timedelta(days=HISTORY_DAYS)
    days: dict[date, float] = defaultdict(float)
    for day, _, _, cost in store.query(*queries.daily_costs(store.database, org_id, since, tz)):
        days[day] += float(cost)
    today = now.astimezone(ZoneInfo(tz)).date()
    first_next = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    learn_until = min(first_next, today)  # closed days only
    learnt = [d for d in sorted(days) if d < learn_until]
    if len(learnt) < 14:
        return None
    from insights.forecast import SpendForecaster  # noqa: PLC0415 - River, SciPy, pandas: ~150 MiB, only here

    model = SpendForecaster()
    for day in learnt:
        model.learn_day(day, days[day])
    last_next = date(first_next.year + (first_next.month == 12), first_next.month % 12 + 1, 1) - timedelta(days=1)
    projection = model.project(max(first_next, learn_until), last_next, 0.0, 0.0, 0.0)
    return projection.p10, projection.p50, projection.p90


def _actual(store: ClickHouseReader, budget: Budget, start: datetime, end: datetime) -> BudgetActual:
    rows = store.query(
        *report_queries.budget_days(
            store.database, budget.org_id, budget.scope.value, budget.scope_id, start, end, budget.timezone
        )
    )
    per_period: dict[date, int] = defaultdict(int)
    for day, cost, _ in rows:
        key = (
            day
            if budget.period is Period.DAILY
            else day - timedelta(days=day.weekday())
            if budget.period is Period.WEEKLY
            else day.replace(day=1)
        )
        per_period[key] += int(cost)
    zone = ZoneInfo(budget.timezone)
    first, last = start.astimezone(zone).date(), (end - timedelta(seconds=1)).astimezone(zone).date()
    periods = {Period.DAILY: (last - first).days + 1, Period.MONTHLY: 1}.get(
        budget.period, len({(first + timedelta(days=i)).isocalendar()[:2] for i in range((last - first).days + 1)})
    )
    peak = max(per_period.values(), default=0)
    over = sum(1 for v in per_period.values() if v > budget.limit_nanos)
    return BudgetActual(budget.key, budget.mode.value, budget.limit_nanos, peak, periods, over)


def custom_data(store: ClickHouseReader, org_id: str, f: CostFilter, now: datetime) -> CustomData:
    db = store.database
    data = CustomData(org_id, f, now)
    for row in store.query(*f.spend(db, org_id)):
        data.rows.append((str(row[0]), int(row[1]), int(row[2]), int(row[3]), int(sum(row[2:7])), int(row[7])))
    for row in store.query(*queries.series(db, org_id, f.granularity, f.start, f.end, f.timezone, f.narrow())):
        data.series.append((row[0].isoformat(), int(row[1]), int(row[2]), int(row[3]), int(sum(row[2:7])), int(row[7])))
    return data


def chargeback_data(
    store: ClickHouseReader, state: ConfigState, org_id: str, month: date, now: datetime
) -> ChargebackData:
    org = state.orgs.get(org_id, OrgConfig(org_id))
    start, end = month_bounds(month, org.timezone)
    last = (end - timedelta(seconds=1)).astimezone(ZoneInfo(org.timezone)).date()
    data = ChargebackData(org_id, month, last, org.timezone, now, org.chargeback or Chargeback())
    if data.owner == "department":
        for row in store.query(*queries.spend_by(store.database, "department_id", org_id, start, end)):
            data.spend[str(row[0])] = (int(row[1]), int(row[7]))
        return data
    # by a tag: its values own their spend; spend it left untagged, or stored before it was declared (so
    # not under the tag in the label rollup: the org's total less the tagged), is what is shared out
    total_requests = total_cost = 0
    for row in store.query(*queries.spend_by(store.database, "org_id", org_id, start, end)):
        total_requests, total_cost = int(row[1]), int(row[7])
    for row in store.query(*spend_by_label(store.database, f"tag:{data.owner}", org_id, start, end)):
        if str(row[0]) not in (UNTAGGED, UNOWNED):
            data.spend[str(row[0])] = (int(row[1]), int(row[7]))
    requests, cost = (sum(values) for values in zip(*data.spend.values(), strict=True)) if data.spend else (0, 0)
    if total_cost - cost or total_requests - requests:
        data.spend[UNOWNED] = (total_requests - requests, total_cost - cost)
    return data


def feature_data(store: ClickHouseReader, state: ConfigState, org_id: str, month: date, now: datetime) -> FeatureData:
    org = state.orgs.get(org_id, OrgConfig(org_id))
    start, end = month_bounds(month, org.timezone)
    before, _ = month_bounds(date.fromordinal(month.toordinal() - 1).replace(day=1), org.timezone)
    last = (end - timedelta(seconds=1)).astimezone(ZoneInfo(org.timezone)).date()
    data = FeatureData(org_id, month, last, org.timezone, now)
    db = store.database
    retention = {
        str(r[0]): (int(r[1]), int(r[2]))
        for r in store.query(*report_queries.feature_retention(db, org_id, before, start, end))
    }
    for feature, cost, requests, tokens, users in store.query(*report_queries.feature_usage(db, org_id, start, end)):
        kept, then = retention.get(str(feature), (0, 0))
        data.features.append(FeatureUsage(str(feature), int(cost), int(requests), int(tokens), int(users), kept, then))
    for feature, week, users, requests in store.query(
        *queries.feature_adoption(db, org_id, start, end, timezone=org.timezone)
    ):
        data.weekly.append((str(feature), week if isinstance(week, date) else week.date(), int(users), int(requests)))
    return data


def model_data(store: ClickHouseReader, state: ConfigState, org_id: str, month: date, now: datetime) -> ModelValueData:
    org = state.orgs.get(org_id, OrgConfig(org_id))
    start, end = month_bounds(month, org.timezone)
    last = (end - timedelta(seconds=1)).astimezone(ZoneInfo(org.timezone)).date()
    data = ModelValueData(org_id, month, last, org.timezone, now)
    catalogue = state.catalogue()
    for row in store.query(*report_queries.model_value(store.database, org_id, start, end)):
        feature, provider, model, requests, errors, *tokens, cost, latency, reported = row
        measured = int(reported) > 0 and latency and not any(math.isnan(x) for x in latency)
        p50, p95 = (float(latency[0]), float(latency[1])) if measured else (None, None)
        t = [int(x) for x in tokens]  # input, output, cache read, cache write, reasoning
        names = (str(feature), str(provider), str(model))
        data.stats.append(
            ModelStats(
                *names, int(requests), int(errors), t[0], t[1], t[2], t[3], t[4], int(cost), p50, p95, int(reported)
            )
        )
    for provider, model in {(s.provider, s.model) for s in data.stats}:
        entry = catalogue.lookup(provider, model, end - timedelta(seconds=1))
        if entry is not None:
            data.prices[(provider, model)] = entry.prices
    return data
