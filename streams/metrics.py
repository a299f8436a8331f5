"""Prometheus metrics of the worker: its pipeline's (:class:`WorkerMetrics`) and its insights'
(:class:`InsightMetrics`)."""

from __future__ import annotations

from functools import partial

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["InsightMetrics", "WorkerMetrics"]


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        counter = partial(Counter, registry=registry)
        gauge = partial(Gauge, registry=registry)
        histogram = partial(Histogram, registry=registry)
        self.consumed = counter("spendstream_events_consumed", "Usage messages consumed")
        self.applied = counter("spendstream_events_applied", "Usage events counted in Redis")
        self.duplicates = counter("spendstream_events_duplicate", "Events whose event_id was already counted")
        self.redelivered = counter("spendstream_events_redelivered", "Offsets seen again after a restart or rebalance")
        self.disowned = counter(
            "spendstream_events_disowned", "Events of a partition revoked from this worker, left to its new owner"
        )
        self.dead_lettered = counter(
            "spendstream_events_dead_lettered", "Events sent to the dead-letter topic", ["field"]
        )
        self.unpriced = counter("spendstream_events_unpriced", "Events rated without a catalogue price", ["source"])
        self.unconfigured = counter(
            "spendstream_events_unconfigured_org", "Events of orgs with no entry in config.v1, counted (no budget)"
        )
        self.buffered_rows = gauge(
            "spendstream_sink_buffered_rows",
            "Rows applied to Redis and waiting for their ClickHouse insert (bounded by max_buffered_rows)",
        )
        self.recoveries = counter(
            "spendstream_redis_recoveries", "Times the worker restored a Redis that lost its state"
        )
        self.recovery_seconds = gauge(
            "spendstream_redis_recovery_seconds",
            "The last restore: from noticing the lost state until caps were enforced (phase=caps), and until "
            "usage was applied again (phase=all)",
            ["phase"],
        )
        self.dlq_failures = counter(
            "spendstream_dlq_send_failures", "Dead letters the broker did not take (retried until it does)"
        )
        self.alerts = counter("spendstream_alerts_emitted", "Alerts produced to alerts.v1", ["kind"])
        self.lag = gauge("spendstream_consumer_lag_messages", "Messages behind the partition's end", ["partition"])
        self.batch_size = histogram(
            "spendstream_batch_size_events",
            "Events per processed batch",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000),
        )
        self.redis_seconds = histogram(
            "spendstream_redis_apply_duration_seconds",
            "One pipelined Redis apply",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
        )
        self.clickhouse_seconds = histogram(
            "spendstream_clickhouse_insert_duration_seconds",
            "One accepted ClickHouse insert",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.redis_failures = counter(
            "spendstream_redis_apply_failures", "Failed Redis applies (the batch is retried: backpressure)"
        )
        self.freshness = histogram(
            "spendstream_event_freshness_seconds",
            "From the message's Kafka timestamp to its spend being visible in Redis",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.clickhouse_rows = counter("spendstream_clickhouse_rows_inserted", "Rows accepted by ClickHouse")
        self.clickhouse_failures = counter(
            "spendstream_clickhouse_insert_failures", "Failed insert attempts (retried: backpressure)"
        )
        self.config_records = counter("spendstream_config_records_applied", "config.v1 records applied", ["kind"])
        self.config_rejected = counter("spendstream_config_records_rejected", "config.v1 records refused")
        self.drift = gauge(
            "spendstream_spend_drift_nanos",
            "Month-to-date org spend, Redis minus ClickHouse (nano-USD); lasting non-zero: a lost or doubled count",
            ["org"],
        )
        self.background_failures = counter(
            "spendstream_worker_background_failures",
            "Failed rounds of the worker's timers and retried config records or alert batches",
            ["task"],
        )
        self.reservations_open = gauge(
            "spendstream_cap_reservations_open", "Reservations held and not yet settled, released or expired", ["org"]
        )


class InsightMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        counter = partial(Counter, registry=registry)
        gauge = partial(Gauge, registry=registry)
        histogram = partial(Histogram, registry=registry)
        self.runs = histogram(
            "spendstream_insights_run_duration_seconds",
            "One run of the spike or the forecast timer",
            ["kind"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.spikes = counter("spendstream_insights_spikes", "Buckets flagged as spikes")
        self.forecasts = counter("spendstream_insights_forecasts", "Period projections written")
        self.entities = gauge("spendstream_insights_entities", "Entities the models hold", ["model"])
        self.restored = counter("spendstream_insights_state_restored", "Times a worker resumed from saved state")
        self.reset = counter(
            "spendstream_insights_state_reset", "Saved states not restored (another version, unreadable): relearnt"
        )
