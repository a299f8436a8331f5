"""The views the console and the reports read besides the dashboards' (:mod:`sinks.queries`): exact
totals, who belongs where, and the history of alerts and spikes. Pure SQL builders, like those."""

from __future__ import annotations

from datetime import datetime

from sinks.queries import Query, time_range
from sinks.schema import validate_database

__all__ = ["EVENT_TOKENS", "recent_alerts", "recent_spikes", "usage_totals", "user_departments"]


def usage_totals(database: str, org_id: str, start: datetime, end: datetime, department: str = "*") -> Query:
    """Exact cost, requests and tokens of an org (or one department of it) in ``[start, end)``, from the
    raw events: the figure the console shows as month to date, equal to what Redis counts."""
    db = validate_database(database)
    sql = (
        f"SELECT sum(cost_nanos), count(), sum({EVENT_TOKENS}) FROM {db}.usage_events "
        "WHERE org_id = {org:String} AND occurred_at >= {start:DateTime64(6, 'UTC')} "
        "AND occurred_at < {end:DateTime64(6, 'UTC')} "
        "AND ({department:String} = '*' OR department_id = {department:String})"
    )
    return sql, {**time_range(org_id, start, end), "department": department}


EVENT_TOKENS = "input_tokens + output_tokens + cache_read_tokens + cache_write_tokens + reasoning_tokens"


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
