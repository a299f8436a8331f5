"""Spend per API key or per value of a declared allocation tag, as SQL built by pure code.

A label is ``api_key`` or ``tag:<key>``. Grouped by one label (and narrowed to at most that label's value),
a view reads the hourly label rollup, where every event counts once under each label: as fast as a grouping
by department. Grouped by one label and narrowed to another (spend of each customer of project apollo), it
reads the raw events, since the rollup keeps labels apart.

Events stored before the org declared a tag carry no value for it: the rollup has no row for them, and the
raw events an empty value. The console shows that remainder as the tag's missing value.
"""

from __future__ import annotations

import re
from datetime import datetime

from schemas.allocation_tags import TAG_KEY_PATTERN
from sinks.queries import TOTALS, Narrow, Query, narrowed
from sinks.schema import validate_database
from sinks.tables import TYPE_COSTS

__all__ = ["API_KEY", "TAG_PREFIX", "check_label", "daily_tag_costs", "spend_by_label"]

API_KEY = "api_key"
TAG_PREFIX = "tag:"
_TAG_KEY = re.compile(TAG_KEY_PATTERN)
_RAW_TOTALS = (
    "count() AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, "
    "sum(reasoning_tokens) AS reasoning_tokens, sum(cost_nanos) AS cost_nanos, "
    + ", ".join(f"sum(cost_by_type_nanos[{i}]) AS {c}" for i, c in enumerate(TYPE_COSTS, 1))
)


def check_label(label: str) -> str:
    """``api_key`` or ``tag:<key>`` with a valid tag key; ValueError otherwise."""
    if label == API_KEY or (label.startswith(TAG_PREFIX) and _TAG_KEY.fullmatch(label[len(TAG_PREFIX) :])):
        return label
    raise ValueError(f"label: {label[:60]!r} is not api_key or tag:<key>")


def _raw_column(label: str, param: str) -> str:
    """The raw events' expression for a label (the tag's key bound as ``param``)."""
    return "api_key_id" if label == API_KEY else f"tags[{{{param}:String}}]"


def spend_by_label(
    database: str, label: str, org_id: str, start: datetime, end: datetime, narrow: Narrow | None = None
) -> Query:
    """Requests, tokens by type and cost per value of ``label``, most expensive first (narrowed as
    :func:`sinks.queries.spend_by` is, and optionally to one value of a label)."""
    db, label = validate_database(database), check_label(label)
    narrow = narrow or Narrow()
    if narrow.label and narrow.label != label:
        check_label(narrow.label)
        plain = Narrow(narrow.department, narrow.user, narrow.model, narrow.feature, narrow.provider)
        where, params = narrowed(org_id, start, end, plain, time="occurred_at")
        where += f" AND {_raw_column(narrow.label, 'filter_tag')} = {{label_value:String}}"
        params |= {"label_value": narrow.label_value, "filter_tag": narrow.label.removeprefix(TAG_PREFIX)}
        params["group_tag"] = label.removeprefix(TAG_PREFIX)
        sql = (
            f"SELECT {_raw_column(label, 'group_tag')} AS key, {_RAW_TOTALS} FROM {db}.usage_events "
            f"WHERE {where} GROUP BY key"
        )
    else:
        where, params = narrowed(org_id, start, end, narrow)
        params["group_label"] = label
        sql = (
            f"SELECT value AS key, {TOTALS} FROM {db}.usage_labels_hourly "
            f"WHERE {where} AND label = {{group_label:String}} GROUP BY key"
        )
    return sql + " ORDER BY cost_nanos DESC, key", params


def daily_tag_costs(database: str, org_id: str, since: datetime, keys: list[str], timezone: str = "UTC") -> Query:
    """Cost per day (cut in ``timezone``) of each value of the tags ``keys`` from ``since``: the daily series
    the forecasts of tag budgets learn. Rows: (day, tag key, value, nano-USD)."""
    db = validate_database(database)
    if since.tzinfo is None:
        raise ValueError("since: must be tz-aware")
    labels = [check_label(TAG_PREFIX + key) for key in keys]
    sql = (
        "SELECT toDate(toTimeZone(bucket, {tz:String})) AS day, substring(label, 5) AS tag, value, "
        f"sum(cost_nanos) FROM {db}.usage_labels_hourly WHERE org_id = {{org:String}} "
        "AND bucket >= {since:DateTime('UTC')} AND label IN {labels:Array(String)} "
        "GROUP BY day, tag, value ORDER BY day"
    )
    return sql, {"org": org_id, "since": since, "tz": timezone, "labels": labels}
