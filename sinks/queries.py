"""The views the product reads from ClickHouse, as SQL built by pure code.

Every builder returns ``(sql, parameters)`` for ``clickhouse-connect``'s
server-side binding (``{name:Type}``); identifiers come only from fixed
lists, never from input. Rollups are summed with ``GROUP BY``, so parts not
yet merged never show as extra rows. Time ranges are ``[start, end)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from schemas.allocation_tags import UNTAGGED
from sinks.schema import DIMENSIONS, validate_database
from sinks.tables import TYPE_COSTS, UsageRow

__all__ = [
    "TOTALS",
    "ClickHouseReader",
    "Narrow",
    "Query",
    "alert_ledger",
    "bucket_costs",
    "daily_costs",
    "feature_adoption",
    "latest_forecasts",
    "narrowed",
    "peak_hours",
    "period_spend_by_scopes",
    "series",
    "spend_by",
    "time_range",
    "top_cost_drivers",
    "usage_watermarks_by_org",
]


class ClickHouseReader(Protocol):
    """What reads these queries' answers: a :class:`~sinks.usage_store.UsageStore` (the console and the
    reports take this, so a benchmark can time every query through a wrapper)."""

    @property
    def database(self) -> str: ...

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...


Query = tuple[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Narrow:
    """A department, user, model, feature and provider to narrow a view to; ``*`` is any. ``label`` (``api_key``
    or ``tag:<key>``) with ``label_value`` narrows to one API key or one value of a declared tag: the views
    then read the label rollup."""

    department: str = "*"
    user: str = "*"
    model: str = "*"
    feature: str = "*"
    provider: str = "*"
    label: str = ""
    label_value: str = ""

    def rollup(self, database: str) -> str:
        """The hourly rollup these filters read: by label when narrowed to one."""
        return f"{database}.usage_labels_hourly" if self.label else f"{database}.usage_hourly"


def _rollup(db: str, narrow: Narrow | None) -> str:
    return (narrow or Narrow()).rollup(db)


TOTALS = (
    "sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
    "sum(reasoning_tokens) AS reasoning_tokens, sum(cost_nanos) AS cost_nanos, "
    + ", ".join(f"sum({c}) AS {c}" for c in TYPE_COSTS)
)
"""Requests, the five token counts, the cost, then the cost of each token type (:data:`TYPE_COSTS`)."""
TOTAL_NAMES = tuple(part.rsplit(" AS ", 1)[1] for part in TOTALS.split(", "))
SPEND_BY_COST = 1 + TOTAL_NAMES.index("cost_nanos")  # where a spend_by row (its key, then TOTALS) has its cost
_GRANULARITY = {"day": "toDate", "week": "toMonday", "month": "toStartOfMonth"}  # each returns a Date


def _dimension(name: str) -> str:
    if name not in DIMENSIONS:
        raise ValueError(f"dimension: one of {', '.join(DIMENSIONS)}")
    return name


def time_range(org_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be tz-aware")
    if end <= start:
        raise ValueError("end must be after start")
    return {"org": org_id, "start": start, "end": end}


def spend_by(
    database: str, dimension: str, org_id: str, start: datetime, end: datetime, narrow: Narrow | None = None
) -> Query:
    """Requests, tokens by type and cost per value of one dimension, most expensive first (optionally
    narrowed to a department, user or model).

    Read from the hourly rollup, so ``start`` and ``end`` should fall on whole hours."""
    db, dim = validate_database(database), _dimension(dimension)
    where, params = narrowed(org_id, start, end, narrow)
    sql = f"SELECT {dim} AS key, {TOTALS} FROM {_rollup(db, narrow)} WHERE {where} GROUP BY key"
    return sql + " ORDER BY cost_nanos DESC, key", params


def series(
    database: str,
    org_id: str,
    granularity: str,
    start: datetime,
    end: datetime,
    timezone: str = "UTC",
    narrow: Narrow | None = None,
) -> Query:
    """Cost and tokens per day, week (from Monday) or month, cut in ``timezone``."""
    if granularity not in _GRANULARITY:
        raise ValueError("granularity: day, week or month")
    db = validate_database(database)
    fn = _GRANULARITY[granularity]
    where, params = narrowed(org_id, start, end, narrow)
    sql = (
        f"SELECT {fn}(toTimeZone(bucket, {{tz:String}})) AS period, {TOTALS} FROM {_rollup(db, narrow)} "
        f"WHERE {where} GROUP BY period ORDER BY period"
    )
    return sql, {**params, "tz": timezone}


SCOPE_COLUMNS = {
    "org": "org_id",
    "department": "department_id",
    "user": "user_id",
    "feature": "feature",
    "model": "model",
    "provider": "provider",
}
COUNTED_SCOPES = {**SCOPE_COLUMNS, "apikey": "api_key_id"}  # every scope kind Redis counts spend for


def top_cost_drivers(
    database: str,
    org_id: str,
    start: datetime,
    end: datetime,
    limit: int = 10,
    scope: str | None = None,
    narrow: Narrow | None = None,
    with_share: bool = True,
) -> Query:
    """The (user, model, feature) combinations that cost most, with their share of the total.

    ``scope`` (``"department/eng"``, ``"user/u1"``, ...) narrows both to one scope of the org. Without
    ``with_share`` the share is 0 and the query scans once: for a caller that knows the total already."""
    db = validate_database(database)
    if not 1 <= limit <= 1000:
        raise ValueError("limit: 1 to 1000")
    where, params = narrowed(org_id, start, end, narrow)
    params["limit"] = limit
    if scope is not None:
        kind, _, ident = scope.partition("/")
        if kind != "org":
            if kind not in SCOPE_COLUMNS or not ident:
                raise ValueError(f"scope: {scope!r} is not <department|user|feature|model|provider>/<id>")
            where += f" AND {SCOPE_COLUMNS[kind]} = {{scope_id:String}}"
            params["scope_id"] = ident
    total = f"(SELECT sum(cost_nanos) FROM {_rollup(db, narrow)} WHERE {where})"
    share = f"round(cost_nanos / {total}, 6)" if with_share else "0"
    sql = (
        f"SELECT user_id, model, feature, sum(cost_nanos) AS cost_nanos, sum(requests) AS requests, {share} AS share "
        f"FROM {_rollup(db, narrow)} WHERE {where} "
        "GROUP BY user_id, model, feature ORDER BY cost_nanos DESC, user_id, model, feature LIMIT {limit:UInt32}"
    )
    return sql, params


def top_cost_drivers_by_scope(
    database: str, org_id: str, start: datetime, end: datetime, kind: str, ids: list[str], limit: int = 3
) -> Query:
    """For many scopes of one kind at once (``kind`` department, ``ids`` [eng, research]): each one's
    ``limit`` costliest (user, model, feature), with their share of that scope's total. One query per
    batch of alerts instead of one per alert."""
    db = validate_database(database)
    if kind not in SCOPE_COLUMNS:
        raise ValueError(f"kind: one of {', '.join(SCOPE_COLUMNS)}")
    if not 1 <= limit <= 100:
        raise ValueError("limit: 1 to 100")
    column = SCOPE_COLUMNS[kind]
    sql = (
        "SELECT scope_id, user_id, model, feature, cost_nanos, requests, "
        "round(cost_nanos / sum(cost_nanos) OVER (PARTITION BY scope_id), 6) AS share FROM ("
        f"SELECT {column} AS scope_id, user_id, model, feature, sum(cost_nanos) AS cost_nanos, "
        f"sum(requests) AS requests FROM {db}.usage_hourly "
        "WHERE org_id = {org:String} AND bucket >= {start:DateTime('UTC')} AND bucket < {end:DateTime('UTC')} "
        f"AND {column} IN {{ids:Array(String)}} GROUP BY scope_id, user_id, model, feature) "
        "ORDER BY scope_id, cost_nanos DESC, user_id, model, feature LIMIT {limit:UInt32} BY scope_id"
    )
    return sql, {**time_range(org_id, start, end), "ids": list(ids), "limit": limit}


def narrowed(
    org_id: str, start: datetime, end: datetime, narrow: Narrow | None, time: str = "bucket"
) -> tuple[str, dict[str, Any]]:
    """The org and time range, and optionally a department, user, model, feature and provider (``*``: any)."""
    where = f"org_id = {{org:String}} AND {time} >= {{start:DateTime('UTC')}} AND {time} < {{end:DateTime('UTC')}}"
    params = time_range(org_id, start, end)
    if narrow is not None:
        for name, column in (("department", "department_id"), ("user", "user_id"), ("model", "model")):
            where += f" AND ({{{name}:String}} = '*' OR {column} = {{{name}:String}})"
            params[name] = getattr(narrow, name)
        for name, column in (("feature", "feature"), ("provider", "provider")):  # only when set: the dashboards
            if getattr(narrow, name) != "*":  # have no variable for them
                where += f" AND {column} = {{{name}:String}}"
                params[name] = getattr(narrow, name)
        if narrow.label:
            where += " AND label = {label:String} AND value = {label_value:String}"
            params |= {"label": narrow.label, "label_value": narrow.label_value}
    return where, params


def peak_hours(
    database: str, org_id: str, start: datetime, end: datetime, timezone: str = "UTC", narrow: Narrow | None = None
) -> Query:
    """Requests and cost by weekday (1 = Monday) and hour of day, in ``timezone``."""
    db = validate_database(database)
    where, params = narrowed(org_id, start, end, narrow)
    sql = (
        "SELECT toDayOfWeek(toTimeZone(bucket, {tz:String})) AS weekday, "
        "toHour(toTimeZone(bucket, {tz:String})) AS hour, sum(requests) AS requests, sum(cost_nanos) AS cost_nanos "
        f"FROM {_rollup(db, narrow)} WHERE {where} GROUP BY weekday, hour ORDER BY weekday, hour"
    )
    return sql, {**params, "tz": timezone}


def feature_adoption(
    database: str,
    org_id: str,
    start: datetime,
    end: datetime,
    narrow: Narrow | None = None,
    timezone: str = "UTC",
) -> Query:
    """Per feature and week (from Monday midnight in ``timezone``): distinct users and requests."""
    db = validate_database(database)
    where, params = narrowed(org_id, start, end, narrow)
    sql = (
        "SELECT feature, toMonday(toTimeZone(bucket, {tz:String})) AS week, uniqExact(user_id) AS users, "
        f"sum(requests) AS requests FROM {_rollup(db, narrow)} WHERE {where} GROUP BY feature, week "
        "ORDER BY feature, week"
    )
    return sql, {**params, "tz": timezone}


def period_spend_by_scopes(
    database: str, org_id: str, day: datetime, week: datetime, month: datetime, end: datetime
) -> Query:
    """Exact cost of every scope of an org in its current day, week and month (the periods starting at
    ``day``, ``week`` and ``month`` and ending at ``end``), from the raw events in one scan: what Redis
    counts per period, tag values included (``tag/project=apollo``; ``(untagged)`` is no scope). Rows: (scope,
    day nano-USD, week nano-USD, month nano-USD, events summed)."""
    db = validate_database(database)
    for name, when in (("day", day), ("week", week), ("month", month), ("end", end)):
        if when.tzinfo is None:
            raise ValueError(f"{name} must be tz-aware")
    pairs = ", ".join(f"('{kind}', toString({column}))" for kind, column in COUNTED_SCOPES.items())
    tags = f"arrayMap((k, v) -> ('tag', if(v = '{UNTAGGED}', '', concat(k, '=', v))), mapKeys(tags), mapValues(tags))"
    sql = (
        f"SELECT concat(scope.1, '/', scope.2) AS key, "
        "sumIf(cost_nanos, occurred_at >= {day:DateTime64(6, 'UTC')}), "
        "sumIf(cost_nanos, occurred_at >= {week:DateTime64(6, 'UTC')}), "
        "sumIf(cost_nanos, occurred_at >= {month:DateTime64(6, 'UTC')}), count() "
        f"FROM {db}.usage_events ARRAY JOIN arrayConcat([{pairs}], {tags}) AS scope "
        "WHERE org_id = {org:String} AND occurred_at >= {start:DateTime64(6, 'UTC')} "
        "AND occurred_at < {end:DateTime64(6, 'UTC')} AND scope.2 != '' "
        "GROUP BY key"
    )
    params = {"org": org_id, "day": day, "week": week, "month": month, "start": min(day, week, month), "end": end}
    return sql, params


def alert_ledger(database: str, since: datetime) -> Query:
    """Every delivery with an outcome since ``since``: what the delivery ledger in Redis remembers, so that a
    Redis that lost its data does not send an alert again. Rows: (org, delivery key, outcome)."""
    db = validate_database(database)
    return (
        f"SELECT org_id, delivery_key, argMax(outcome, at) FROM {db}.alert_history "
        "WHERE at >= {since:DateTime64(3, 'UTC')} AND delivery_key != '' GROUP BY org_id, delivery_key",
        {"since": since},
    )


def orgs_since(database: str, since: datetime) -> Query:
    db = validate_database(database)
    return (
        f"SELECT DISTINCT org_id FROM {db}.usage_events WHERE occurred_at >= {{since:DateTime64(6, 'UTC')}}",
        {"since": since},
    )


def ingested_since(database: str, since: datetime) -> Query:
    """What the duplicate window must remember: the rows of the events ingested since ``since`` (every
    column of :class:`~sinks.tables.UsageRow`, in its order, for their content digests), then when each
    was ingested. If one event was stored twice, the first stored is the one kept."""
    db = validate_database(database)
    columns = ", ".join(UsageRow._fields)
    return (
        f"SELECT {columns}, ingested_at FROM {db}.usage_events WHERE ingested_at >= {{since:DateTime64(3, 'UTC')}} "
        "ORDER BY ingested_at DESC",
        {"since": since},
    )


def org_spend(database: str, org_id: str, start: datetime, end: datetime) -> Query:
    """The org's total cost in ``[start, end)`` from the raw events (what Redis counts for ``org/<org>``)."""
    db = validate_database(database)
    sql = (
        f"SELECT sum(cost_nanos) FROM {db}.usage_events WHERE org_id = {{org:String}} "
        "AND occurred_at >= {start:DateTime64(6, 'UTC')} AND occurred_at < {end:DateTime64(6, 'UTC')}"
    )
    return sql, time_range(org_id, start, end)


def usage_watermarks_by_org(database: str) -> Query:
    db = validate_database(database)
    return (
        f"SELECT org_id, kafka_partition, max(kafka_offset) FROM {db}.usage_events GROUP BY org_id, kafka_partition",
        {},
    )


def bucket_costs(database: str, start: datetime, end: datetime, size: int) -> Query:
    """Cost per bucket of ``size`` seconds (its start in epoch seconds), org, department, user, model,
    feature and allocation tags (their keys and values) of events that occurred in ``[start, end)``: what the
    spike detector scores, the closed buckets of one run (or a run's worth of history to relearn) in one
    query."""
    db = validate_database(database)
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise ValueError("start and end: tz-aware, end after start")
    if size < 1:
        raise ValueError("size: a bucket of at least one second")
    sql = (
        "SELECT intDiv(toUnixTimestamp(occurred_at), {size:UInt32}) * {size:UInt32} AS bucket, "
        "org_id, department_id, user_id, model, feature, mapKeys(tags) AS tag_keys, mapValues(tags) AS tag_values, "
        "sum(cost_nanos) AS cost_nanos "
        f"FROM {db}.usage_events "
        "WHERE occurred_at >= {start:DateTime64(6, 'UTC')} AND occurred_at < {end:DateTime64(6, 'UTC')} "
        "GROUP BY bucket, org_id, department_id, user_id, model, feature, tag_keys, tag_values"
    )
    return sql, {"start": start, "end": end, "size": size}


def daily_costs(database: str, org_id: str, since: datetime, timezone: str = "UTC") -> Query:
    """Cost per day (cut in ``timezone``), department and user of one org from ``since``: the daily
    series the forecasts learn."""
    db = validate_database(database)
    if since.tzinfo is None:
        raise ValueError("since: must be tz-aware")
    sql = (
        "SELECT toDate(toTimeZone(bucket, {tz:String})) AS day, department_id, user_id, "
        f"sum(cost_nanos) AS cost_nanos FROM {db}.usage_hourly "
        "WHERE org_id = {org:String} AND bucket >= {since:DateTime('UTC')} "
        "GROUP BY day, department_id, user_id ORDER BY day"
    )
    return sql, {"org": org_id, "since": since, "tz": timezone}


def latest_forecasts(database: str, org_id: str, start: datetime | None = None, end: datetime | None = None) -> Query:
    """The newest forecast of each scope and period of an org (made in ``[start, end)`` when given)."""
    db = validate_database(database)
    where = "org_id = {org:String}"
    params: dict[str, Any] = {"org": org_id}
    if start is not None and end is not None:
        params = {**time_range(org_id, start, end)}
        where += " AND at >= {start:DateTime('UTC')} AND at < {end:DateTime('UTC')}"
    sql = (
        "SELECT scope, period, period_key, argMax(spent_nanos, at) AS spent_nanos, argMax(p10_nanos, at) AS p10, "
        "argMax(p50_nanos, at) AS p50, argMax(p90_nanos, at) AS p90, argMax(budget_nanos, at) AS budget, "
        "argMax(probability_over, at) AS chance_over, argMax(runout_date, at) AS runout_date, max(at) AS made_at "
        f"FROM {db}.forecasts WHERE {where} GROUP BY scope, period, period_key ORDER BY scope, period, period_key"
    )
    return sql, params
