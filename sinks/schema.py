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
from dataclasses import dataclass
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

__all__ = ["DIMENSIONS", "LOCAL", "SHARD_KEYS", "SUMS", "migrations", "validate_database"]

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


LOCAL = "_local"  # on a cluster, a table's rows are in <name>_local on each shard; <name> is Distributed over them
# how the Distributed table in front spreads inserts over the shards: a Kafka partition's events on one shard
# (its highest stored offset, the sink's exactly-once gate, is then one shard's), an org's other rows on one;
# rollups are written by each shard's own views, never through the Distributed table, so they have no key
SHARD_KEYS = {
    "usage_events": "kafka_partition",
    "config_audit": "kafka_partition",
    "usage_hourly": "",
    "usage_daily": "",
    "usage_labels_hourly": "",
}


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a table's rows are: itself on one server; on a cluster, ``<name>_local`` on every shard,
    replicated, with a ``Distributed`` table of the table's own name in front (what every query reads)."""

    db: str
    cluster: str = ""

    @property
    def on(self) -> str:
        return f" ON CLUSTER {self.cluster}" if self.cluster else ""

    def stored(self, table: Table[Any]) -> str:
        return table.name + (LOCAL if self.cluster else "")

    def create(self, table: Table[Any]) -> list[str]:
        if not self.cluster:
            return [table.create(self.db)]
        key = SHARD_KEYS.get(table.name, "cityHash64(org_id)")
        front = f"Distributed({self.cluster}, {self.db}, {self.stored(table)}{', ' + key if key else ''})"
        columns = ",\n".join(table.column_specs())  # no projections: they belong to the shards' tables
        return [
            table.create(self.db, self.cluster, LOCAL),
            f"CREATE TABLE IF NOT EXISTS {self.db}.{table.name}{self.on} (\n{columns}\n) ENGINE = {front}",
        ]


def _view_query(place: _Place, rollup: Table[Any], bucket: str) -> str:
    source = f"{place.db}.{place.stored(USAGE_EVENTS)}"
    dims = ", ".join(DIMENSIONS)
    if rollup is USAGE_LABELS_HOURLY:  # each event once under its API key and once under each of its tags
        dims = ", ".join(d for d in DIMENSIONS if d != "org_id")
        return f"""SELECT {bucket} AS bucket, org_id, label, value, {dims},
    {_sums()}
FROM {source}
ARRAY JOIN
    arrayConcat(['api_key'], arrayMap(k -> concat('tag:', k), mapKeys(tags))) AS label,
    arrayConcat([api_key_id], mapValues(tags)) AS value
GROUP BY bucket, org_id, label, value, {dims}"""
    return f"""SELECT {bucket} AS bucket, {dims},
    {_sums()}
FROM {source}
GROUP BY bucket, {dims}"""


def _view(place: _Place, rollup: Table[Any], bucket: str) -> list[str]:
    """The rollup, its materialized view, and (for a rollup made by an earlier release) the columns it gained
    and the view's query brought up to them: ``MODIFY QUERY`` swaps the query in place, so no insert is missed.
    On a cluster each shard's view reads the shard's own events and writes the shard's own rollup."""
    query = _view_query(place, rollup, bucket)
    db, mv = place.db, f"{place.db}.{rollup.name}_mv"
    return [  # the columns before the view: ClickHouse checks a view's query even when the view exists
        *place.create(rollup),
        *_added(place, rollup),
        *_projections(place, rollup),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {mv}{place.on} TO {db}.{place.stored(rollup)} AS\n{query}",
        f"ALTER TABLE {mv}{place.on} MODIFY QUERY\n{query}",
    ]


def _projections(place: _Place, table: Table[Any]) -> list[str]:
    """A table made before its projections gains them; its parts gain them as they merge (a query reads the
    parts without one from the table itself), so no rewrite of old data is forced on a start."""
    if not table.projections:
        return []
    at = f"{place.db}.{place.stored(table)}{place.on}"
    mode = f"ALTER TABLE {at} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'"
    return [mode, *(f"ALTER TABLE {at} ADD PROJECTION IF NOT EXISTS {p}" for p in table.projections)]


def _added(place: _Place, table: Table[Any]) -> list[str]:
    """Columns added after the first release: a table made before gains them (each a no-op once there); on a
    cluster, the shards' tables and the Distributed table in front."""
    names = [place.stored(table)] + ([table.name] if place.cluster else [])
    statements = []
    for column in table.added:
        before = table.columns[table.columns.index(column) - 1]
        added = f"ADD COLUMN IF NOT EXISTS {table.column(column)} AFTER {before}"
        statements += [f"ALTER TABLE {place.db}.{name}{place.on} {added}" for name in names]
    return statements


def migrations(database: str, cluster: str = "") -> list[str]:
    """Every statement, idempotent, in order; with ``cluster`` (``clickhouse.cluster``), for a sharded and
    replicated ClickHouse: each table replicated on every shard with a ``Distributed`` table in front."""
    place = _Place(validate_database(database), validate_database(cluster) if cluster else "")
    return [
        f"CREATE DATABASE IF NOT EXISTS {place.db}{place.on}",
        *place.create(USAGE_EVENTS),
        *_added(place, USAGE_EVENTS),
        *_view(place, USAGE_HOURLY, "toStartOfHour(occurred_at)"),
        *_view(place, USAGE_DAILY, "toDateTime(toStartOfDay(occurred_at), 'UTC')"),
        *_view(place, USAGE_LABELS_HOURLY, "toStartOfHour(occurred_at)"),
        *place.create(CONFIG_AUDIT),
        *place.create(ALERT_HISTORY),
        *_added(place, ALERT_HISTORY),
        *place.create(FORECASTS),
        *place.create(ANOMALIES),
        *place.create(REPORT_RUNS),
        *place.create(REPORT_FILES),
    ]
