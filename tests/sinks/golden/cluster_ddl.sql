CREATE DATABASE IF NOT EXISTS spendstream ON CLUSTER spendstream
;
CREATE TABLE IF NOT EXISTS spendstream.usage_events_local ON CLUSTER spendstream (
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
    list_cost_nanos Int64 DEFAULT cost_nanos,
    cost_by_type_nanos Array(Int64) DEFAULT [],
    usd_per_token Array(Decimal(38, 18)) DEFAULT [],
    discount Decimal(18, 9) DEFAULT 0,
    tags Map(LowCardinality(String), String) DEFAULT map(),
    kafka_partition UInt32,
    kafka_offset UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/spendstream/usage_events_local', '{replica}')
ORDER BY (org_id, occurred_at, event_id)
SETTINGS replicated_deduplication_window = 1000
;
CREATE TABLE IF NOT EXISTS spendstream.usage_events ON CLUSTER spendstream (
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
    list_cost_nanos Int64 DEFAULT cost_nanos,
    cost_by_type_nanos Array(Int64) DEFAULT [],
    usd_per_token Array(Decimal(38, 18)) DEFAULT [],
    discount Decimal(18, 9) DEFAULT 0,
    tags Map(LowCardinality(String), String) DEFAULT map(),
    kafka_partition UInt32,
    kafka_offset UInt64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = Distributed(spendstream, spendstream, usage_events_local, kafka_partition)
;
ALTER TABLE spendstream.usage_events_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS api_key_id String DEFAULT '' AFTER metadata
;
ALTER TABLE spendstream.usage_events ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS api_key_id String DEFAULT '' AFTER metadata
;
ALTER TABLE spendstream.usage_events_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String) DEFAULT '' AFTER api_key_id
;
ALTER TABLE spendstream.usage_events ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String) DEFAULT '' AFTER api_key_id
;
ALTER TABLE spendstream.usage_events_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS list_cost_nanos Int64 DEFAULT cost_nanos AFTER service_tier
;
ALTER TABLE spendstream.usage_events ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS list_cost_nanos Int64 DEFAULT cost_nanos AFTER service_tier
;
ALTER TABLE spendstream.usage_events_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS cost_by_type_nanos Array(Int64) DEFAULT [] AFTER list_cost_nanos
;
ALTER TABLE spendstream.usage_events ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS cost_by_type_nanos Array(Int64) DEFAULT [] AFTER list_cost_nanos
;
ALTER TABLE spendstream.usage_events_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS usd_per_token Array(Decimal(38, 18)) DEFAULT [] AFTER cost_by_type_nanos
;
ALTER TABLE spendstream.usage_events ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS usd_per_token Array(Decimal(38, 18)) DEFAULT [] AFTER cost_by_type_nanos
;
ALTER TABLE spendstream.usage_events_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS discount Decimal(18, 9) DEFAULT 0 AFTER usd_per_token
;
ALTER TABLE spendstream.usage_events ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS discount Decimal(18, 9) DEFAULT 0 AFTER usd_per_token
;
ALTER TABLE spendstream.usage_events_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS tags Map(LowCardinality(String), String) DEFAULT map() AFTER discount
;
ALTER TABLE spendstream.usage_events ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS tags Map(LowCardinality(String), String) DEFAULT map() AFTER discount
;
CREATE TABLE IF NOT EXISTS spendstream.usage_hourly_local ON CLUSTER spendstream (
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
    cost_nanos Int64,
    input_cost_nanos Int64 DEFAULT 0,
    output_cost_nanos Int64 DEFAULT 0,
    cache_read_cost_nanos Int64 DEFAULT 0,
    cache_write_cost_nanos Int64 DEFAULT 0,
    reasoning_cost_nanos Int64 DEFAULT 0
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/spendstream/usage_hourly_local', '{replica}')
PARTITION BY toYYYYMM(bucket)
ORDER BY (org_id, bucket, department_id, user_id, feature, provider, model)
SETTINGS replicated_deduplication_window = 1000
;
CREATE TABLE IF NOT EXISTS spendstream.usage_hourly ON CLUSTER spendstream (
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
    cost_nanos Int64,
    input_cost_nanos Int64 DEFAULT 0,
    output_cost_nanos Int64 DEFAULT 0,
    cache_read_cost_nanos Int64 DEFAULT 0,
    cache_write_cost_nanos Int64 DEFAULT 0,
    reasoning_cost_nanos Int64 DEFAULT 0
) ENGINE = Distributed(spendstream, spendstream, usage_hourly_local)
;
ALTER TABLE spendstream.usage_hourly_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS input_cost_nanos Int64 DEFAULT 0 AFTER cost_nanos
;
ALTER TABLE spendstream.usage_hourly ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS input_cost_nanos Int64 DEFAULT 0 AFTER cost_nanos
;
ALTER TABLE spendstream.usage_hourly_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS output_cost_nanos Int64 DEFAULT 0 AFTER input_cost_nanos
;
ALTER TABLE spendstream.usage_hourly ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS output_cost_nanos Int64 DEFAULT 0 AFTER input_cost_nanos
;
ALTER TABLE spendstream.usage_hourly_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS cache_read_cost_nanos Int64 DEFAULT 0 AFTER output_cost_nanos
;
ALTER TABLE spendstream.usage_hourly ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS cache_read_cost_nanos Int64 DEFAULT 0 AFTER output_cost_nanos
;
ALTER TABLE spendstream.usage_hourly_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS cache_write_cost_nanos Int64 DEFAULT 0 AFTER cache_read_cost_nanos
;
ALTER TABLE spendstream.usage_hourly ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS cache_write_cost_nanos Int64 DEFAULT 0 AFTER cache_read_cost_nanos
;
ALTER TABLE spendstream.usage_hourly_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS reasoning_cost_nanos Int64 DEFAULT 0 AFTER cache_write_cost_nanos
;
ALTER TABLE spendstream.usage_hourly ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS reasoning_cost_nanos Int64 DEFAULT 0 AFTER cache_write_cost_nanos
;
CREATE MATERIALIZED VIEW IF NOT EXISTS spendstream.usage_hourly_mv ON CLUSTER spendstream TO spendstream.usage_hourly_local AS
SELECT toStartOfHour(occurred_at) AS bucket, org_id, department_id, user_id, feature, provider, model,
    count() AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_nanos) AS cost_nanos,
    sum(cost_by_type_nanos[1]) AS input_cost_nanos,
    sum(cost_by_type_nanos[2]) AS output_cost_nanos,
    sum(cost_by_type_nanos[3]) AS cache_read_cost_nanos,
    sum(cost_by_type_nanos[4]) AS cache_write_cost_nanos,
    sum(cost_by_type_nanos[5]) AS reasoning_cost_nanos
FROM spendstream.usage_events_local
GROUP BY bucket, org_id, department_id, user_id, feature, provider, model
;
ALTER TABLE spendstream.usage_hourly_mv ON CLUSTER spendstream MODIFY QUERY
SELECT toStartOfHour(occurred_at) AS bucket, org_id, department_id, user_id, feature, provider, model,
    count() AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_nanos) AS cost_nanos,
    sum(cost_by_type_nanos[1]) AS input_cost_nanos,
    sum(cost_by_type_nanos[2]) AS output_cost_nanos,
    sum(cost_by_type_nanos[3]) AS cache_read_cost_nanos,
    sum(cost_by_type_nanos[4]) AS cache_write_cost_nanos,
    sum(cost_by_type_nanos[5]) AS reasoning_cost_nanos
FROM spendstream.usage_events_local
GROUP BY bucket, org_id, department_id, user_id, feature, provider, model
;
CREATE TABLE IF NOT EXISTS spendstream.usage_daily_local ON CLUSTER spendstream (
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
    cost_nanos Int64,
    input_cost_nanos Int64 DEFAULT 0,
    output_cost_nanos Int64 DEFAULT 0,
    cache_read_cost_nanos Int64 DEFAULT 0,
    cache_write_cost_nanos Int64 DEFAULT 0,
    reasoning_cost_nanos Int64 DEFAULT 0
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/spendstream/usage_daily_local', '{replica}')
PARTITION BY toYYYYMM(bucket)
ORDER BY (org_id, bucket, department_id, user_id, feature, provider, model)
SETTINGS replicated_deduplication_window = 1000
;
CREATE TABLE IF NOT EXISTS spendstream.usage_daily ON CLUSTER spendstream (
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
    cost_nanos Int64,
    input_cost_nanos Int64 DEFAULT 0,
    output_cost_nanos Int64 DEFAULT 0,
    cache_read_cost_nanos Int64 DEFAULT 0,
    cache_write_cost_nanos Int64 DEFAULT 0,
    reasoning_cost_nanos Int64 DEFAULT 0
) ENGINE = Distributed(spendstream, spendstream, usage_daily_local)
;
ALTER TABLE spendstream.usage_daily_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS input_cost_nanos Int64 DEFAULT 0 AFTER cost_nanos
;
ALTER TABLE spendstream.usage_daily ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS input_cost_nanos Int64 DEFAULT 0 AFTER cost_nanos
;
ALTER TABLE spendstream.usage_daily_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS output_cost_nanos Int64 DEFAULT 0 AFTER input_cost_nanos
;
ALTER TABLE spendstream.usage_daily ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS output_cost_nanos Int64 DEFAULT 0 AFTER input_cost_nanos
;
ALTER TABLE spendstream.usage_daily_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS cache_read_cost_nanos Int64 DEFAULT 0 AFTER output_cost_nanos
;
ALTER TABLE spendstream.usage_daily ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS cache_read_cost_nanos Int64 DEFAULT 0 AFTER output_cost_nanos
;
ALTER TABLE spendstream.usage_daily_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS cache_write_cost_nanos Int64 DEFAULT 0 AFTER cache_read_cost_nanos
;
ALTER TABLE spendstream.usage_daily ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS cache_write_cost_nanos Int64 DEFAULT 0 AFTER cache_read_cost_nanos
;
ALTER TABLE spendstream.usage_daily_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS reasoning_cost_nanos Int64 DEFAULT 0 AFTER cache_write_cost_nanos
;
ALTER TABLE spendstream.usage_daily ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS reasoning_cost_nanos Int64 DEFAULT 0 AFTER cache_write_cost_nanos
;
CREATE MATERIALIZED VIEW IF NOT EXISTS spendstream.usage_daily_mv ON CLUSTER spendstream TO spendstream.usage_daily_local AS
SELECT toDateTime(toStartOfDay(occurred_at), 'UTC') AS bucket, org_id, department_id, user_id, feature, provider, model,
    count() AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_nanos) AS cost_nanos,
    sum(cost_by_type_nanos[1]) AS input_cost_nanos,
    sum(cost_by_type_nanos[2]) AS output_cost_nanos,
    sum(cost_by_type_nanos[3]) AS cache_read_cost_nanos,
    sum(cost_by_type_nanos[4]) AS cache_write_cost_nanos,
    sum(cost_by_type_nanos[5]) AS reasoning_cost_nanos
FROM spendstream.usage_events_local
GROUP BY bucket, org_id, department_id, user_id, feature, provider, model
;
ALTER TABLE spendstream.usage_daily_mv ON CLUSTER spendstream MODIFY QUERY
SELECT toDateTime(toStartOfDay(occurred_at), 'UTC') AS bucket, org_id, department_id, user_id, feature, provider, model,
    count() AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_nanos) AS cost_nanos,
    sum(cost_by_type_nanos[1]) AS input_cost_nanos,
    sum(cost_by_type_nanos[2]) AS output_cost_nanos,
    sum(cost_by_type_nanos[3]) AS cache_read_cost_nanos,
    sum(cost_by_type_nanos[4]) AS cache_write_cost_nanos,
    sum(cost_by_type_nanos[5]) AS reasoning_cost_nanos
FROM spendstream.usage_events_local
GROUP BY bucket, org_id, department_id, user_id, feature, provider, model
;
CREATE TABLE IF NOT EXISTS spendstream.usage_labels_hourly_local ON CLUSTER spendstream (
    bucket DateTime('UTC'),
    org_id LowCardinality(String),
    label LowCardinality(String),
    value String,
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
    cost_nanos Int64,
    input_cost_nanos Int64 DEFAULT 0,
    output_cost_nanos Int64 DEFAULT 0,
    cache_read_cost_nanos Int64 DEFAULT 0,
    cache_write_cost_nanos Int64 DEFAULT 0,
    reasoning_cost_nanos Int64 DEFAULT 0,
    PROJECTION by_value (SELECT org_id, label, bucket, value, sum(requests), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_nanos), sum(input_cost_nanos), sum(output_cost_nanos), sum(cache_read_cost_nanos), sum(cache_write_cost_nanos), sum(reasoning_cost_nanos) GROUP BY org_id, label, bucket, value)
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/spendstream/usage_labels_hourly_local', '{replica}')
PARTITION BY toYYYYMM(bucket)
ORDER BY (org_id, label, bucket, value, department_id, user_id, feature, provider, model)
SETTINGS replicated_deduplication_window = 1000, deduplicate_merge_projection_mode = 'rebuild'
;
CREATE TABLE IF NOT EXISTS spendstream.usage_labels_hourly ON CLUSTER spendstream (
    bucket DateTime('UTC'),
    org_id LowCardinality(String),
    label LowCardinality(String),
    value String,
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
    cost_nanos Int64,
    input_cost_nanos Int64 DEFAULT 0,
    output_cost_nanos Int64 DEFAULT 0,
    cache_read_cost_nanos Int64 DEFAULT 0,
    cache_write_cost_nanos Int64 DEFAULT 0,
    reasoning_cost_nanos Int64 DEFAULT 0
) ENGINE = Distributed(spendstream, spendstream, usage_labels_hourly_local)
;
ALTER TABLE spendstream.usage_labels_hourly_local ON CLUSTER spendstream MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'
;
ALTER TABLE spendstream.usage_labels_hourly_local ON CLUSTER spendstream ADD PROJECTION IF NOT EXISTS by_value (SELECT org_id, label, bucket, value, sum(requests), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_nanos), sum(input_cost_nanos), sum(output_cost_nanos), sum(cache_read_cost_nanos), sum(cache_write_cost_nanos), sum(reasoning_cost_nanos) GROUP BY org_id, label, bucket, value)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS spendstream.usage_labels_hourly_mv ON CLUSTER spendstream TO spendstream.usage_labels_hourly_local AS
SELECT toStartOfHour(occurred_at) AS bucket, org_id, label, value, department_id, user_id, feature, provider, model,
    count() AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_nanos) AS cost_nanos,
    sum(cost_by_type_nanos[1]) AS input_cost_nanos,
    sum(cost_by_type_nanos[2]) AS output_cost_nanos,
    sum(cost_by_type_nanos[3]) AS cache_read_cost_nanos,
    sum(cost_by_type_nanos[4]) AS cache_write_cost_nanos,
    sum(cost_by_type_nanos[5]) AS reasoning_cost_nanos
FROM spendstream.usage_events_local
ARRAY JOIN
    arrayConcat(['api_key'], arrayMap(k -> concat('tag:', k), mapKeys(tags))) AS label,
    arrayConcat([api_key_id], mapValues(tags)) AS value
GROUP BY bucket, org_id, label, value, department_id, user_id, feature, provider, model
;
ALTER TABLE spendstream.usage_labels_hourly_mv ON CLUSTER spendstream MODIFY QUERY
SELECT toStartOfHour(occurred_at) AS bucket, org_id, label, value, department_id, user_id, feature, provider, model,
    count() AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_nanos) AS cost_nanos,
    sum(cost_by_type_nanos[1]) AS input_cost_nanos,
    sum(cost_by_type_nanos[2]) AS output_cost_nanos,
    sum(cost_by_type_nanos[3]) AS cache_read_cost_nanos,
    sum(cost_by_type_nanos[4]) AS cache_write_cost_nanos,
    sum(cost_by_type_nanos[5]) AS reasoning_cost_nanos
FROM spendstream.usage_events_local
ARRAY JOIN
    arrayConcat(['api_key'], arrayMap(k -> concat('tag:', k), mapKeys(tags))) AS label,
    arrayConcat([api_key_id], mapValues(tags)) AS value
GROUP BY bucket, org_id, label, value, department_id, user_id, feature, provider, model
;
CREATE TABLE IF NOT EXISTS spendstream.config_audit_local ON CLUSTER spendstream (
    key String,
    kind LowCardinality(String),
    value String,
    deleted UInt8,
    kafka_partition UInt32,
    kafka_offset UInt64,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/spendstream/config_audit_local', '{replica}')
ORDER BY (kafka_partition, kafka_offset)
;
CREATE TABLE IF NOT EXISTS spendstream.config_audit ON CLUSTER spendstream (
    key String,
    kind LowCardinality(String),
    value String,
    deleted UInt8,
    kafka_partition UInt32,
    kafka_offset UInt64,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = Distributed(spendstream, spendstream, config_audit_local, kafka_partition)
;
CREATE TABLE IF NOT EXISTS spendstream.alert_history_local ON CLUSTER spendstream (
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
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/spendstream/alert_history_local', '{replica}')
ORDER BY (org_id, at)
;
CREATE TABLE IF NOT EXISTS spendstream.alert_history ON CLUSTER spendstream (
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
) ENGINE = Distributed(spendstream, spendstream, alert_history_local, cityHash64(org_id))
;
ALTER TABLE spendstream.alert_history_local ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS delivery_key String DEFAULT '' AFTER detected_to_done_ms
;
ALTER TABLE spendstream.alert_history ON CLUSTER spendstream ADD COLUMN IF NOT EXISTS delivery_key String DEFAULT '' AFTER detected_to_done_ms
;
CREATE TABLE IF NOT EXISTS spendstream.forecasts_local ON CLUSTER spendstream (
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
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/spendstream/forecasts_local', '{replica}')
PARTITION BY toYYYYMM(at)
ORDER BY (org_id, scope, period, at)
;
CREATE TABLE IF NOT EXISTS spendstream.forecasts ON CLUSTER spendstream (
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
) ENGINE = Distributed(spendstream, spendstream, forecasts_local, cityHash64(org_id))
;
CREATE TABLE IF NOT EXISTS spendstream.anomalies_local ON CLUSTER spendstream (
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
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/spendstream/anomalies_local', '{replica}')
ORDER BY (org_id, bucket_seconds, bucket, entity)
;
CREATE TABLE IF NOT EXISTS spendstream.anomalies ON CLUSTER spendstream (
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
) ENGINE = Distributed(spendstream, spendstream, anomalies_local, cityHash64(org_id))
;
CREATE TABLE IF NOT EXISTS spendstream.report_runs_local ON CLUSTER spendstream (
    run_id String,
    org_id LowCardinality(String),
    template String,
    due_at DateTime('UTC'),
    period String,
    attempt UInt16,
    outcome LowCardinality(String),
    error String,
    files Array(String),
    recipients Array(String),
    worker String,
    started_at DateTime64(3, 'UTC'),
    finished_at DateTime64(3, 'UTC')
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/spendstream/report_runs_local', '{replica}')
ORDER BY (org_id, template, due_at, attempt)
;
CREATE TABLE IF NOT EXISTS spendstream.report_runs ON CLUSTER spendstream (
    run_id String,
    org_id LowCardinality(String),
    template String,
    due_at DateTime('UTC'),
    period String,
    attempt UInt16,
    outcome LowCardinality(String),
    error String,
    files Array(String),
    recipients Array(String),
    worker String,
    started_at DateTime64(3, 'UTC'),
    finished_at DateTime64(3, 'UTC')
) ENGINE = Distributed(spendstream, spendstream, report_runs_local, cityHash64(org_id))
;
CREATE TABLE IF NOT EXISTS spendstream.report_files_local ON CLUSTER spendstream (
    run_id String,
    org_id LowCardinality(String),
    name String,
    content String CODEC(ZSTD(3))
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/spendstream/report_files_local', '{replica}')
ORDER BY (org_id, run_id, name)
;
CREATE TABLE IF NOT EXISTS spendstream.report_files ON CLUSTER spendstream (
    run_id String,
    org_id LowCardinality(String),
    name String,
    content String CODEC(ZSTD(3))
) ENGINE = Distributed(spendstream, spendstream, report_files_local, cityHash64(org_id))
