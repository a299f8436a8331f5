"""The views the console and the reports read besides the dashboards' (:mod:`sinks.queries`): budget
spend and previews, who belongs where, and the history of alerts and spikes. Pure SQL builders, like
those."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.allocation_tags import split_tag_scope
from schemas.budgets import ScopeKind
from sinks.queries import COUNTED_SCOPES, SCOPE_COLUMNS, Query, time_range
from sinks.schema import validate_database

__all__ = [
    "alerts_between",
    "budget_days",
    "budget_spend",
    "feature_retention",
    "feature_usage",
    "model_value",
    "recent_alerts",
    "recent_spikes",
    "requests_over_limit",
    "user_departments",
]


def user_departments(database: str, org_id: str, since: datetime) -> Query:
    """Each user's department (the one most of their recent spend is counted in)."""
    db = validate_database(database)
    sql = (
        f"SELECT user_id, argMax(department_id, cost) FROM (SELECT user_id, department_id, sum(cost_nanos) AS cost "
        f"FROM {db}.usage_hourly WHERE org_id = {{org:String}} AND bucket >= {{since:DateTime('UTC')}} "
        "GROUP BY user_id, department_id) GROUP BY user_id"
    )
    return sql, {"org": org_id, "since": since}


def recent_alerts(database: str, org_id: str, since: datetime, limit: int = 50) -> Query:
    """Delivery outcomes of an org's alerts since ``since``, newest first."""
    db = validate_database(database)
    if not 1 <= limit <= 1000:
        raise ValueError("limit: 1 to 1000")
    sql = (
        "SELECT at, kind, scope, period_key, stage, channel, channel_type, target, outcome, attempts, error "
        f"FROM {db}.alert_history WHERE org_id = {{org:String}} AND at >= {{since:DateTime64(3, 'UTC')}} "
        "ORDER BY at DESC LIMIT {limit:UInt32}"
    )
    return sql, {"org": org_id, "since": since, "limit": limit}


def recent_spikes(database: str, org_id: str, since: datetime, limit: int = 20) -> Query:
    """The org's spikes since ``since``, newest first, with what drove each."""
    db = validate_database(database)
    if not 1 <= limit <= 1000:
        raise ValueError("limit: 1 to 1000")
    sql = (
        "SELECT bucket, bucket_seconds, entity, observed_nanos, expected_nanos, ratio, score, driver, driver_share "
        f"FROM {db}.anomalies FINAL WHERE org_id = {{org:String}} AND bucket >= {{since:DateTime('UTC')}} "
        "ORDER BY bucket DESC, score DESC LIMIT {limit:UInt32}"
    )
    return sql, {"org": org_id, "since": since, "limit": limit}


_PERIOD_START = {"daily": "toDate", "weekly": "toMonday", "monthly": "toStartOfMonth"}


def budget_days(
    database: str, org_id: str, scope: str, scope_id: str, start: datetime, end: datetime, timezone: str
) -> Query:
    """Cost and requests per day (in ``timezone``) of one budget's scope: what a budget preview replays."""
    db, (match, ids) = validate_database(database), _scope_match(scope, scope_id)
    sql = (
        "SELECT toDate(toTimeZone(occurred_at, {tz:String})) AS day, sum(cost_nanos), count() "
        f"FROM {db}.usage_events "
        "WHERE org_id = {org:String} AND occurred_at >= {start:DateTime64(6, 'UTC')} "
        f"AND occurred_at < {{end:DateTime64(6, 'UTC')}} AND {match} GROUP BY day ORDER BY day"
    )
    return sql, {**time_range(org_id, start, end), "tz": timezone, **ids}


def requests_over_limit(
    database: str,
    org_id: str,
    scope: str,
    scope_id: str,
    period: str,
    start: datetime,
    end: datetime,
    timezone: str,
    limit_nanos: int,
) -> Query:
    """Per period (its first day): the requests that arrived once the scope's spend in that period, counting
    them, passed ``limit_nanos``; what a hard cap of that limit would have refused."""
    db, (match, ids) = validate_database(database), _scope_match(scope, scope_id)
    if period not in _PERIOD_START:
        raise ValueError("period: daily, weekly or monthly")
    sql = (
        "SELECT period_start, countIf(running > {limit:Int64}) FROM ("
        f"SELECT {_PERIOD_START[period]}(toTimeZone(occurred_at, {{tz:String}})) AS period_start, "
        "sum(cost_nanos) OVER (PARTITION BY period_start ORDER BY occurred_at, event_id "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running "
        f"FROM {db}.usage_events WHERE org_id = {{org:String}} AND occurred_at >= {{start:DateTime64(6, 'UTC')}} "
        f"AND occurred_at < {{end:DateTime64(6, 'UTC')}} AND {match}) "
        "GROUP BY period_start ORDER BY period_start"
    )
    return sql, {**time_range(org_id, start, end), "tz": timezone, **ids, "limit": limit_nanos}


def budget_spend(database: str, org_id: str, budgets: list[tuple[str, str, datetime]], end: datetime) -> Query:
    """The spend of each budget's scope in its current period, in one scan of the hourly rollup: ``budgets``
    lists (scope kind, scope id, period start); the one row holds a sum per budget, in that order."""
    db = validate_database(database)
    if not budgets:
        raise ValueError("budgets: at least one")
    params: dict[str, Any] = {"org": org_id, "end": end}
    sums = []
    for i, (kind, ident, start) in enumerate(budgets):
        if kind not in SCOPE_COLUMNS:
            raise ValueError(f"scope: one of {', '.join(SCOPE_COLUMNS)}")
        sums.append(
            f"sumIf(cost_nanos, {SCOPE_COLUMNS[kind]} = {{id{i}:String}} AND bucket >= {{start{i}:DateTime('UTC')}})"
        )
        params[f"id{i}"], params[f"start{i}"] = ident, start
    params["start"] = min(start for _, _, start in budgets)
    sql = (
        f"SELECT {', '.join(sums)} FROM {db}.usage_hourly WHERE org_id = {{org:String}} "
        "AND bucket >= {start:DateTime('UTC')} AND bucket < {end:DateTime('UTC')}"
    )
    return sql, params


def _scope_match(scope: str, scope_id: str) -> tuple[str, dict[str, Any]]:
    """The condition on the raw events of one budget scope, and its parameters."""
    if scope == ScopeKind.TAG:
        pair = split_tag_scope(scope_id)
        if pair is None:
            raise ValueError("scope_id: <tag>=<value>")
        return "tags[{tag_key:String}] = {scope_id:String}", {"tag_key": pair[0], "scope_id": pair[1]}
    if scope not in COUNTED_SCOPES:
        raise ValueError(f"scope: one of {', '.join([*COUNTED_SCOPES, ScopeKind.TAG])}")
    return f"{COUNTED_SCOPES[scope]} = {{scope_id:String}}", {"scope_id": scope_id}


def alerts_between(database: str, org_id: str, start: datetime, end: datetime) -> Query:
    """The org's alert deliveries in ``[start, end)``, oldest first: what a report lists as raised."""
    db = validate_database(database)
    sql = (
        "SELECT at, kind, scope, period_key, stage, channel, outcome "
        f"FROM {db}.alert_history WHERE org_id = {{org:String}} AND at >= {{start:DateTime64(3, 'UTC')}} "
        "AND at < {end:DateTime64(3, 'UTC')} ORDER BY at"
    )
    return sql, time_range(org_id, start, end)


def feature_usage(database: str, org_id: str, start: datetime, end: datetime) -> Query:
    """Per feature in ``[start, end)``: cost, requests, tokens and distinct users."""
    db = validate_database(database)
    sql = (
        "SELECT feature, sum(cost_nanos), sum(requests), "
        "sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens + reasoning_tokens), "
        f"uniqExact(user_id) FROM {db}.usage_hourly WHERE org_id = {{org:String}} "
        "AND bucket >= {start:DateTime('UTC')} AND bucket < {end:DateTime('UTC')} GROUP BY feature ORDER BY feature"
    )
    return sql, time_range(org_id, start, end)


def feature_retention(database: str, org_id: str, before: datetime, start: datetime, end: datetime) -> Query:
    """Per feature: the users active in ``[before, start)`` (the month before) who were also active in
    ``[start, end)``, and all the users of ``[before, start)``."""
    db = validate_database(database)
    sql = (
        "SELECT feature, countIf(now_ AND then_), countIf(then_) FROM ("
        "SELECT feature, user_id, max(bucket >= {start:DateTime('UTC')}) AS now_, "
        "max(bucket < {start:DateTime('UTC')}) AS then_ "
        f"FROM {db}.usage_hourly WHERE org_id = {{org:String}} AND bucket >= {{before:DateTime('UTC')}} "
        "AND bucket < {end:DateTime('UTC')} GROUP BY feature, user_id) GROUP BY feature ORDER BY feature"
    )
    return sql, {**time_range(org_id, start, end), "before": before}


def model_value(database: str, org_id: str, start: datetime, end: datetime) -> Query:
    """Per feature and model in ``[start, end)``, from the raw events: requests, failed requests, tokens by
    type, cost, latency p50 and p95 (of the events that report one), and how many events reported one (with
    none, ClickHouse's quantiles of nothing are 0: the count tells them from a measured 0)."""
    db = validate_database(database)
    sql = (
        "SELECT feature, provider, model, count(), countIf(status != 'success'), sum(input_tokens), "
        "sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), "
        "sum(cost_nanos), quantilesExact(0.5, 0.95)(latency_ms), count(latency_ms) "
        f"FROM {db}.usage_events WHERE org_id = {{org:String}} AND occurred_at >= {{start:DateTime64(6, 'UTC')}} "
        "AND occurred_at < {end:DateTime64(6, 'UTC')} GROUP BY feature, provider, model ORDER BY feature, model"
    )
    return sql, time_range(org_id, start, end)
