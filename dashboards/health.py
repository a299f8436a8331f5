"""The health dashboards, over Prometheus: enforcement (decisions, denials, Redis errors, latency) and the
pipeline (lag, throughput, freshness, sinks, dead letters, alert delivery). ``dashboards.generate`` writes
them with the ClickHouse dashboards."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, timeseries

from dashboards.grafana import (
    Layout,
    new_board,
    prom_panel,
)


def enforcement() -> dashboard.Dashboard:
    grid = Layout()
    board = new_board("spendstream-enforcement", "spendstream: enforcement", ["enforcement", "prometheus"])
    rate = "[$__rate_interval]"
    return (
        board.with_panel(
            prom_panel(
                timeseries.Panel(),
                "Decisions by outcome",
                [(f"sum by (outcome) (rate(spendstream_cap_decisions_total{rate}))", "{{outcome}}")],
                grid.next(12, 8),
                "reqps",
            )
        )
        .with_panel(
            prom_panel(
                timeseries.Panel(),
                "Denials by scope",
                [(f"sum by (scope, period) (rate(spendstream_cap_denials_total{rate}))", "{{scope}} {{period}}")],
                grid.next(12, 8),
                "reqps",
            )
        )
        .with_panel(
            prom_panel(
                timeseries.Panel(),
                "Reservations outstanding",
                [("sum by (org) (spendstream_cap_reservations_open)", "{{org}}")],
                grid.next(8, 8),
                "short",
            )
        )
        .with_panel(
            prom_panel(
                timeseries.Panel(),
                "Reservations expired",
                [(f"sum(rate(spendstream_cap_reservations_expired_total{rate}))", "expired")],
                grid.next(8, 8),
                "reqps",
            )
        )
        .with_panel(
            prom_panel(
                timeseries.Panel(),
                "Reserve latency p99",
                [
                    (
                        f'histogram_quantile(0.99, sum by (le) (rate(spendstream_cap_decision_duration_seconds_bucket{{operation="reserve"}}{rate})))',
                        "p99",
                    )
                ],
                grid.next(8, 8),
                "s",
            )
        )
    )


def pipeline() -> dashboard.Dashboard:
    grid = Layout()
    board = new_board("spendstream-pipeline", "spendstream: pipeline health", ["pipeline", "prometheus"])
    rate = "[$__rate_interval]"
    return (
        board.with_panel(
            prom_panel(
                timeseries.Panel(),
                "Consumer lag",
                [("sum by (partition) (spendstream_consumer_lag_messages)", "partition {{partition}}")],
                grid.next(12, 8),
                "short",
            )
        )
        .with_panel(
            prom_panel(
                timeseries.Panel(),
                "Throughput",
                [
                    (f"sum(rate(spendstream_events_consumed_total{rate}))", "consumed"),
                    (f"sum(rate(spendstream_events_applied_total{rate}))", "applied"),
                    (f"sum(rate(spendstream_events_duplicate_total{rate}))", "duplicate"),
                ],
                grid.next(12, 8),
                "ops",
            )
        )
        .with_panel(
            prom_panel(
                timeseries.Panel(),
                "Dead letters by field",
                [(f"sum by (field) (rate(spendstream_events_dead_lettered_total{rate}))", "{{field}}")],
                grid.next(8, 8),
                "ops",
            )
        )
        .with_panel(
            prom_panel(
                timeseries.Panel(),
                "Sink latency p99",
                [
                    (
                        f"histogram_quantile(0.99, sum by (le) (rate(spendstream_clickhouse_insert_duration_seconds_bucket{rate})))",
                        "ClickHouse insert",
                    ),
                    (
                        f"histogram_quantile(0.99, sum by (le) (rate(spendstream_redis_apply_duration_seconds_bucket{rate})))",
                        "Redis apply",
                    ),
                    (
                        f"histogram_quantile(0.99, sum by (le) (rate(spendstream_event_freshness_seconds_bucket{rate})))",
                        "event freshness",
                    ),
                ],
                grid.next(8, 8),
                "s",
            )
        )
        .with_panel(
            prom_panel(
                timeseries.Panel(),
                "Redis - ClickHouse drift",
                [("sum by (org) (spendstream_spend_drift_nanos) / 1e9", "{{org}}")],
                grid.next(8, 8),
                "currencyUSD",
            )
        )
        .with_panel(
            prom_panel(
                timeseries.Panel(),
                "Alert deliveries",
                [
                    (
                        f"sum by (channel, outcome) (rate(spendstream_alert_deliveries_total{rate}))",
                        "{{channel}} {{outcome}}",
                    )
                ],
                grid.next(24, 8),
                "ops",
            )
        )
    )
