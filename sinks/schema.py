"""ClickHouse migrations of spendstream, as SQL built by pure code from :mod:`sinks.tables`.

``usage_events`` holds every applied event with its cost in nano-USD and the
Kafka partition and offset it came from. Rollups (hourly and daily, by org,
department, user, feature, provider and model; and hourly by label: each API key
and each declared allocation tag's value) are SummingMergeTree tables fed by
materialized views, and are always read with ``sum()`` and ``GROUP BY``,
so unmerged parts never show as extra rows.

Why duplicates cannot inflate a sum: an event reaches ClickHouse only when the
Redis apply reports it as new (the event-id fingerprint gate, with a 24-hour
window) or as applied earlier by this very partition and offset; and the sink
skips offsets at or below the highest offset already stored for the partition,
which is what makes a redelivery after a crash exact. Each insert also carries
an ``insert_deduplication_token`` (partition and offset range), so a retry of
an insert whose answer was lost is dropped by ClickHouse itself
(``non_replicated_deduplication_window``), in the views too
(``deduplicate_blocks_in_dependent_materialized_views``). A
ReplacingMergeTree would not help: materialized views see every inserted
block, duplicates included, and a replacing merge never reaches the rollups.
The raw table has no partition key, so an insert of one batch is one part:
written whole or not at all.
"""

from __future__ import annotations

import re
from typing import Any

from sinks.tables import (
    ALERT_HISTORY,
    ANOMALIES,
    CONFIG_AUDIT,
    FORECASTS,
    REPORT_FILES,
    REPORT_RUNS,
    TYPE_COSTS,
    USAGE_DAILY,
    USAGE_EVENTS,
    USAGE_HOURLY,
    USAGE_LABELS_HOURLY,
    Table,
)

__all__ = ["DIMENSIONS", "SUMS", "migrations", "validate_database"]

_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

DIMENSIONS = ("org_id", "department_id", "user_id", "feature", "provider", "model")
SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
)


def validate_database(name: str) -> str:
    if not _DATABASE.fullmatch(name):
        raise ValueError(f"database: {name!r} is not a plain identifier")
    return name


def _sums() -> str:
    """A rollup's sums of the events of one group: requests, tokens, cost, and cost by token type (an event's
    ``cost_by_type_nanos`` is [] when unsplit, and an index past its end reads 0)."""
    sums = ["count() AS requests", *(f"sum({c}) AS {c}" for c in SUMS if c != "requests")]
    sums += [f"sum(cost_by_type_nanos[{i}]) AS {c}" for i, c in enumerate(TYPE_COSTS, 1)]
    return ",\n    ".join(sums)


def _view_query(db: str, rollup: Table[Any], bucket: str) -> str:
    dims = ", ".join(DIMENSIONS)
    if rollup is USAGE_LABELS_HOURLY:  # each event once under its API key and once under each of its tags
        dims = ", ".join(d for d in DIMENSIONS if d != "org_id")
        return f"""SELECT {bucket} AS bucket, org_id, label, value, {dims},
    {_sums()}
FROM {db}.{USAGE_EVENTS.name}
ARRAY JOIN
    arrayConcat(['api_key'], arrayMap(k -> concat('tag:', k), mapKeys(tags))) AS label,
    arrayConcat([api_key_id], mapValues(tags)) AS value
GROUP BY bucket, org_id, label, value, {dims}"""
    return f"""SELECT {bucket} AS bucket, {dims},
    {_sums()}
FROM {db}.{USAGE_EVENTS.name}
GROUP BY bucket, {dims}"""


def _view(db: str, rollup: Table[Any], bucket: str) -> list[str]:
    """The rollup, its materialized view, and (for a rollup made by an earlier release) the columns it gained
    and the view's query brought up to them: ``MODIFY QUERY`` swaps the query in place, so no insert is missed."""
    query = _view_query(db, rollup, bucket)
    return [  # the columns before the view: ClickHouse checks a view's query even when the view exists
        rollup.create(db),
        *_added(db, rollup),
        *_projections(db, rollup),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{rollup.name}_mv TO {db}.{rollup.name} AS\n{query}",
        f"ALTER TABLE {db}.{rollup.name}_mv MODIFY QUERY\n{query}",
    ]


def _projections(db: str, table: Table[Any]) -> list[str]:
    """A table made before its projections gains them; its parts gain them as they merge (a query reads the
    parts without one from the table itself), so no rewrite of old data is forced on a start."""
    if not table.projections:
        return []
    mode = f"ALTER TABLE {db}.{table.name} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'"
    return [mode, *(f"ALTER TABLE {db}.{table.name} ADD PROJECTION IF NOT EXISTS {p}" for p in table.projections)]


def _added(db: str, table: Table[Any]) -> list[str]:
    """Columns added after the first release: a table made before gains them (each a no-op once there)."""
    statements = []
    for name in table.added:
        before = table.columns[table.columns.index(name) - 1]
        statements.append(f"ALTER TABLE {db}.{table.name} ADD COLUMN IF NOT EXISTS {table.column(name)} AFTER {before}")
    return statements


def migrations(database: str) -> list[str]:
    """Every statement, idempotent, in order."""
    db = validate_database(database)
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        USAGE_EVENTS.create(db),
        *_added(db, USAGE_EVENTS),
        *_view(db, USAGE_HOURLY, "toStartOfHour(occurred_at)"),
        *_view(db, USAGE_DAILY, "toDateTime(toStartOfDay(occurred_at), 'UTC')"),
        *_view(db, USAGE_LABELS_HOURLY, "toStartOfHour(occurred_at)"),
        CONFIG_AUDIT.create(db),
        ALERT_HISTORY.create(db),
        *_added(db, ALERT_HISTORY),
        FORECASTS.create(db),
        ANOMALIES.create(db),
        REPORT_RUNS.create(db),
        REPORT_FILES.create(db),
    ]
