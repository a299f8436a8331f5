"""ClickHouse tables of spendstream, as SQL built by pure code.

``usage_events`` holds every applied event with its cost in nano-USD and the
Kafka partition and offset it came from. Rollups (hourly and daily, by org,
department, user, feature, provider and model) are SummingMergeTree tables fed
by materialized views, and are always read with ``sum()`` and ``GROUP BY``,
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

__all__ = [
    "ALERT_HISTORY_COLUMNS",
    "ANOMALY_COLUMNS",
    "DIMENSIONS",
    "FORECAST_COLUMNS",
    "USAGE_COLUMNS",
    "migrations",
    "validate_database",
]

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

USAGE_COLUMNS = (
    "event_id",
    "occurred_at",
    "org_id",
    "department_id",
    "user_id",
    "feature",
    "provider",
    "model",
    "request_id",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "price_source",
    "status",
    "latency_ms",
    "metadata",
    "api_key_id",
    "service_tier",
    "kafka_partition",
    "kafka_offset",
)


FORECAST_COLUMNS = (
    "at",
    "org_id",
    "scope",
    "period",
    "period_key",
    "period_start",
    "period_end",
    "spent_nanos",
    "p10_nanos",
    "p50_nanos",
    "p90_nanos",
    "naive_nanos",
    "budget_nanos",
    "probability_over",
    "runout_date",
    "weekly_growth",
    "model",
)
ANOMALY_COLUMNS = (
    "bucket",
    "bucket_seconds",
    "org_id",
    "entity",
    "observed_nanos",
    "expected_nanos",
    "ratio",
    "score",
    "driver",
    "driver_share",
)
ALERT_HISTORY_COLUMNS = (
    "at",
    "org_id",
    "dedup_key",
    "kind",
    "scope",
    "period_key",
    "stage",
    "channel",
    "channel_type",
    "target",
    "outcome",
    "attempts",
    "error",
    "detected_to_done_ms",
    "delivery_key",
)


def validate_database(name: str) -> str:
    if not _DATABASE.fullmatch(name):
        raise ValueError(f"database: {name!r} is not a plain identifier")
    return name


def _rollup(db: str, name: str, bucket: str) -> list[str]:
    dims = ", ".join(DIMENSIONS)
    return [
        f"""CREATE TABLE IF NOT EXISTS {db}.{name} (
    bucket DateTime('UTC'),
    org_id LowCardinality(String),
    department_id LowCardinality(String),
    user_id String,
    feature LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    requests UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    cost_nanos Int64
) ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (org_id, bucket, department_id, user_id, feature, provider, model)
SETTINGS non_replicated_deduplication_window = 1000""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{name}_mv TO {db}.{name} AS
SELECT {bucket} AS bucket, {dims},
    count() AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_nanos) AS cost_nanos
FROM {db}.usage_events
GROUP BY bucket, {dims}""",
    ]


def migrations(database: str) -> list[str]:
    """Every statement, idempotent, in order."""
    db = validate_database(database)
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"""CREATE TABLE IF NOT EXISTS {db}.usage_events (
    event_id String,
    occurred_at DateTime64(6, 'UTC'),
    org_id LowCardinality(String),
    department_id LowCardinality(String),
    user_id String,
    feature LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    request_id String,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens UInt64,
    cost_nanos Int64,
    price_source LowCardinality(String),
    status LowCardinality(String),
    latency_ms Nullable(UInt32),
    metadata Map(String, String),
    api_key_id String DEFAULT '',
    service_tier LowCardinality(String) DEFAULT '',
    kafka_partition UInt32,
    kafka_offset UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY (org_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000""",
        # columns added after the first release: a table made before gains them (each a no-op once there)
        f"ALTER TABLE {db}.usage_events ADD COLUMN IF NOT EXISTS api_key_id String DEFAULT '' AFTER metadata",
        f"ALTER TABLE {db}.usage_events ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String) DEFAULT '' "
        "AFTER api_key_id",
        *_rollup(db, "usage_hourly", "toStartOfHour(occurred_at)"),
        *_rollup(db, "usage_daily", "toDateTime(toStartOfDay(occurred_at), 'UTC')"),
        f"""CREATE TABLE IF NOT EXISTS {db}.config_audit (
    key String,
    kind LowCardinality(String),
    value String,
    deleted UInt8,
    kafka_partition UInt32,
    kafka_offset UInt64,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (kafka_partition, kafka_offset)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.alert_history (
    at DateTime64(3, 'UTC'),
    org_id LowCardinality(String),
    dedup_key String,
    kind LowCardinality(String),
    scope String,
    period_key String,
    stage UInt16,
    channel String,
    channel_type LowCardinality(String),
    target String,
    outcome LowCardinality(String),
    attempts UInt16,
    error String,
    detected_to_done_ms UInt32,
    delivery_key String DEFAULT ''
) ENGINE = MergeTree
ORDER BY (org_id, at)""",
        f"ALTER TABLE {db}.alert_history ADD COLUMN IF NOT EXISTS delivery_key String DEFAULT ''",
        f"""CREATE TABLE IF NOT EXISTS {db}.forecasts (
    at DateTime64(3, 'UTC'),
    org_id LowCardinality(String),
    scope String,
    period LowCardinality(String),
    period_key String,
    period_start DateTime('UTC'),
    period_end DateTime('UTC'),
    spent_nanos Int64,
    p10_nanos Int64,
    p50_nanos Int64,
    p90_nanos Int64,
    naive_nanos Int64,
    budget_nanos Int64,
    probability_over Float64,
    runout_date Nullable(Date),
    weekly_growth Float64,
    model LowCardinality(String)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (org_id, scope, period, at)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.anomalies (
    bucket DateTime('UTC'),
    bucket_seconds UInt32,
    org_id LowCardinality(String),
    entity String,
    observed_nanos Int64,
    expected_nanos Int64,
    ratio Float64,
    score Float64,
    driver String,
    driver_share Float64,
    detected_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (org_id, bucket_seconds, bucket, entity)""",
    ]
