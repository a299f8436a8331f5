"""The Grafana dashboards, as code: ``python -m dashboards.generate`` writes dashboards/grafana/dashboards/*.json.

Built with grafana-foundation-sdk for Grafana 11.6, the version docker-compose.yml pins, so the JSON has
the shape that version reads; a test checks the committed files are exactly what this module builds.
ClickHouse panels use the grafana-clickhouse-datasource plugin (datasource uid ``spendstream-clickhouse``)
with raw SQL and its macros (``$__timeFilter``, ``$__timeInterval``, ``$__toTime``); Prometheus panels
use uid ``spendstream-prometheus``. Money is stored in nano-USD and shown in USD (``/ 1e9``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import barchart, bargauge, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos, VariableOption

OUT = Path(__file__).resolve().parent / "grafana" / "dashboards"
CLICKHOUSE = DataSourceRef(type_val="grafana-clickhouse-datasource", uid="spendstream-clickhouse")
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="spendstream-prometheus")
ALL = "*"  # the value a variable takes for "All"; filters below treat it as no filter

FILTERS = (
    "org_id = '${org}'"
    " AND ('${department}' = '*' OR department_id = '${department}')"
    " AND ('${user}' = '*' OR user_id = '${user}')"
    " AND ('${model}' = '*' OR model = '${model}')"
)
TOKENS = "input_tokens + output_tokens + cache_read_tokens + cache_write_tokens + reasoning_tokens"
MONTH = "bucket >= toStartOfMonth($__toTime) AND bucket < $__toTime"


class ClickHouseQuery(variants.Dataquery):  # type: ignore[misc]
    """A raw-SQL query of grafana-clickhouse-datasource (v4): format 0 time series, 1 table."""

    def __init__(self, sql: str, table_format: bool, ref_id: str = "A") -> None:
        self.sql = sql
        self.table_format = table_format
        self.ref_id = ref_id

    def build(self) -> ClickHouseQuery:  # what the SDK's panel builders call on a target
        return self

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": {"type": CLICKHOUSE.type_val, "uid": CLICKHOUSE.uid},
            "editorType": "sql",
            "format": 1 if self.table_format else 0,
            "queryType": "table" if self.table_format else "timeseries",
            "rawSql": self.sql,
        }


@dataclass
class Layout:
    """Places panels left to right, 24 columns a row."""

    x: int = 0
    y: int = 0
    row_height: int = 0

    def next(self, w: int, h: int) -> GridPos:
        if self.x + w > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = GridPos(h=h, w=w, x=self.x, y=self.y)
        self.x += w
        self.row_height = max(self.row_height, h)
        return pos


def _variable(name: str, label: str, sql: str, include_all: bool) -> dashboard.QueryVariable:
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(CLICKHOUSE)
        .query(sql)
        .refresh(1)  # on dashboard load
        .sort(1)
    )
    if include_all:
        variable = variable.include_all(True).all_value(ALL).current(VariableOption(text="All", value=ALL))
    return variable


def _scope_variables(board: dashboard.Dashboard) -> dashboard.Dashboard:
    org = "SELECT DISTINCT org_id FROM usage_daily ORDER BY org_id"
    dept = (
        "SELECT DISTINCT department_id FROM usage_daily WHERE org_id = '${org}' AND department_id != '' "
        "ORDER BY department_id"
    )
    user = (
        "SELECT DISTINCT user_id FROM usage_daily WHERE org_id = '${org}' "
        "AND ('${department}' = '*' OR department_id = '${department}') ORDER BY user_id"
    )
    model = "SELECT DISTINCT model FROM usage_daily WHERE org_id = '${org}' ORDER BY model"
    return (
        board.with_variable(_variable("org", "Org", org, include_all=False))
        .with_variable(_variable("department", "Department", dept, include_all=True))
        .with_variable(_variable("user", "User", user, include_all=True))
        .with_variable(_variable("model", "Model", model, include_all=True))
    )


def _board(uid: str, title: str, tags: list[str]) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(["spendstream", *tags])
        .time("now-30d", "now")
        .refresh("1m")
        .timezone("utc")
        .editable()
    )


def _ch(panel: Any, title: str, sql: str, pos: GridPos, unit: str | None, table_format: bool) -> Any:
    built = panel.title(title).datasource(CLICKHOUSE).grid_pos(pos).with_target(ClickHouseQuery(sql, table_format))
    return built.unit(unit) if unit else built


def _prom(panel: Any, title: str, exprs: list[tuple[str, str]], pos: GridPos, unit: str | None) -> Any:
    built = panel.title(title).datasource(PROMETHEUS).grid_pos(pos)
    for i, (expr, legend) in enumerate(exprs):
        built = built.with_target(
            prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i)).datasource(PROMETHEUS)
        )
    return built.unit(unit) if unit else built


def _budget_used(kind: str) -> str:
    column = {"department": "department_id", "user": "user_id"}[kind]
    return (
        f"SELECT b.scope_id AS {kind}, round(s.spent / b.limit_nanos * 100, 1) AS used_percent FROM ("
        "SELECT splitByChar('/', key)[4] AS scope_id, "
        "JSONExtractInt(argMax(value, (kafka_partition, kafka_offset)), 'limit_nanos') AS limit_nanos, "
        "argMax(deleted, (kafka_partition, kafka_offset)) AS gone FROM config_audit "
        f"WHERE key LIKE concat('budget/', '${{org}}', '/{kind}/%/monthly') GROUP BY key) AS b "
        f"LEFT JOIN (SELECT {column}, sum(cost_nanos) AS spent FROM usage_hourly "
        f"WHERE org_id = '${{org}}' AND {MONTH} GROUP BY {column}) AS s ON s.{column} = b.scope_id "
        f"WHERE b.gone = 0 ORDER BY used_percent DESC, {kind}"
    )


def overview() -> dashboard.Dashboard:
    grid = Layout()
    board = _scope_variables(_board("spendstream-overview", "spendstream: overview", ["overview"]))
    spend = f"SELECT sum(cost_nanos) / 1e9 AS spend_usd FROM usage_hourly WHERE $__timeFilter(bucket) AND {FILTERS}"
    month = f"SELECT sum(cost_nanos) / 1e9 AS month_to_date_usd FROM usage_hourly WHERE {MONTH} AND {FILTERS}"
    projected = (
        "SELECT argMax(p50_nanos, at) / 1e9 AS projected_usd, argMax(budget_nanos, at) / 1e9 AS budget_usd "
        "FROM forecasts WHERE org_id = '${org}' AND scope = concat('org/', '${org}') AND period = 'monthly' "
        "AND $__timeFilter(at)"
    )
    tokens = (
        f"SELECT $__timeInterval(bucket) AS time, model, sum({TOKENS}) AS tokens FROM usage_hourly "
        f"WHERE $__timeFilter(bucket) AND {FILTERS} GROUP BY time, model ORDER BY time, model"
    )
    drivers = (
        "SELECT user_id, model, feature, sum(cost_nanos) / 1e9 AS cost_usd, sum(requests) AS requests "
        f"FROM usage_hourly WHERE $__timeFilter(bucket) AND {FILTERS} "
        "GROUP BY user_id, model, feature ORDER BY cost_usd DESC, user_id, model, feature LIMIT 10"
    )
    return (
        board.with_panel(_ch(stat.Panel(), "Spend in the time range", spend, grid.next(6, 4), "currencyUSD", True))
        .with_panel(_ch(stat.Panel(), "Month to date", month, grid.next(6, 4), "currencyUSD", True))
        .with_panel(
            _ch(stat.Panel(), "Projected month end (P50) and budget", projected, grid.next(12, 4), "currencyUSD", True)
        )
        .with_panel(_ch(timeseries.Panel(), "Tokens by model", tokens, grid.next(12, 9), "short", False))
        .with_panel(_ch(table.Panel(), "Top cost drivers", drivers, grid.next(12, 9), None, True))
        .with_panel(
            _ch(
                bargauge.Panel(),
                "Monthly budget used, by department",
                _budget_used("department"),
                grid.next(12, 8),
                "percent",
                True,
            )
        )
        .with_panel(
            _ch(
                bargauge.Panel(),
                "Monthly budget used, by user",
                _budget_used("user"),
                grid.next(12, 8),
                "percent",
                True,
            )
        )
    )


def cost_analysis() -> dashboard.Dashboard:
    grid = Layout()
    board = _scope_variables(_board("spendstream-cost", "spendstream: cost analysis", ["cost"]))
    by_provider = (
        "SELECT $__timeInterval(bucket) AS time, provider, sum(cost_nanos) / 1e9 AS cost_usd FROM usage_hourly "
        f"WHERE $__timeFilter(bucket) AND {FILTERS} GROUP BY time, provider ORDER BY time, provider"
    )

    def by(column: str, limit: int) -> str:
        return (
            f"SELECT {column}, sum(cost_nanos) / 1e9 AS cost_usd, sum(requests) AS requests FROM usage_hourly "
            f"WHERE $__timeFilter(bucket) AND {FILTERS} GROUP BY {column} ORDER BY cost_usd DESC, {column} LIMIT {limit}"
        )

    def series(function: str, name: str) -> str:
        return (
            f"SELECT {function}(bucket) AS {name}, sum(cost_nanos) / 1e9 AS cost_usd FROM usage_daily "
            f"WHERE $__timeFilter(bucket) AND {FILTERS} GROUP BY {name} ORDER BY {name}"
        )

    board = board.with_panel(
        _ch(timeseries.Panel(), "Cost by provider", by_provider, grid.next(24, 8), "currencyUSD", False)
    )
    for title, column, limit in (
        ("Cost by model", "model", 20),
        ("Cost by feature", "feature", 20),
        ("Cost by department", "department_id", 50),
        ("Cost by user (top 20)", "user_id", 20),
    ):
        board = board.with_panel(_ch(barchart.Panel(), title, by(column, limit), grid.next(12, 8), "currencyUSD", True))
    for title, function, name in (
        ("Daily cost", "toDate", "day"),
        ("Weekly cost", "toMonday", "week"),
        ("Monthly cost", "toStartOfMonth", "month"),
    ):
        board = board.with_panel(
            _ch(timeseries.Panel(), title, series(function, name), grid.next(8, 8), "currencyUSD", False)
        )
    return board


def patterns() -> dashboard.Dashboard:
    grid = Layout()
    board = _scope_variables(_board("spendstream-patterns", "spendstream: usage patterns", ["patterns"]))
    peak = (
        "SELECT toDayOfWeek(bucket) AS weekday, toHour(bucket) AS hour, sum(requests) AS requests, "
        f"sum(cost_nanos) / 1e9 AS cost_usd FROM usage_hourly WHERE $__timeFilter(bucket) AND {FILTERS} "
        "GROUP BY weekday, hour ORDER BY weekday, hour"
    )
    weekday = (
        "SELECT toDayOfWeek(bucket) AS weekday, sum(cost_nanos) / 1e9 / uniqExact(toDate(bucket)) AS avg_daily_cost_usd "
        f"FROM usage_daily WHERE $__timeFilter(bucket) AND {FILTERS} GROUP BY weekday ORDER BY weekday"
    )
    adoption = (
        "SELECT toMonday(bucket) AS week, feature, uniqExact(user_id) AS users FROM usage_daily "
        f"WHERE $__timeFilter(bucket) AND {FILTERS} GROUP BY week, feature ORDER BY week, feature"
    )
    return (
        board.with_panel(
            _ch(table.Panel(), "Peak hours: weekday (1 = Monday) x hour, UTC", peak, grid.next(12, 12), None, True)
        )
        .with_panel(
            _ch(
                barchart.Panel(), "Weekday profile: average daily cost", weekday, grid.next(12, 12), "currencyUSD", True
            )
        )
        .with_panel(
            _ch(timeseries.Panel(), "Feature adoption: users per week", adoption, grid.next(24, 8), "short", False)
        )
    )


def forecast() -> dashboard.Dashboard:
    grid = Layout()
    scope = "SELECT DISTINCT scope FROM forecasts WHERE org_id = '${org}' ORDER BY scope"
    board = (
        _board("spendstream-forecast", "spendstream: forecasts", ["forecast"])
        .with_variable(_variable("org", "Org", "SELECT DISTINCT org_id FROM usage_daily ORDER BY org_id", False))
        .with_variable(_variable("scope", "Scope", scope, False))
    )
    where = "org_id = '${org}' AND scope = '${scope}' AND period = 'monthly' AND $__timeFilter(at)"
    cone = (
        "SELECT at AS time, p10_nanos / 1e9 AS p10, p50_nanos / 1e9 AS p50, p90_nanos / 1e9 AS p90, "
        f"spent_nanos / 1e9 AS spent, budget_nanos / 1e9 AS budget FROM forecasts WHERE {where} ORDER BY at"
    )
    chance = f"SELECT argMax(probability_over, at) * 100 AS chance_over_budget FROM forecasts WHERE {where}"
    runout = f"SELECT toString(argMax(runout_date, at)) AS runs_out_on FROM forecasts WHERE {where}"
    latest = (
        "SELECT scope, period, period_key, argMax(spent_nanos, at) / 1e9 AS spent_usd, argMax(p10_nanos, at) / 1e9 AS p10_usd, "
        "argMax(p50_nanos, at) / 1e9 AS p50_usd, argMax(p90_nanos, at) / 1e9 AS p90_usd, "
        "argMax(budget_nanos, at) / 1e9 AS budget_usd, argMax(probability_over, at) AS chance_over, "
        "toString(argMax(runout_date, at)) AS runs_out_on FROM forecasts WHERE org_id = '${org}' AND $__timeFilter(at) "
        "GROUP BY scope, period, period_key ORDER BY scope, period, period_key"
    )
    return (
        board.with_panel(
            _ch(
                timeseries.Panel(),
                "Projected period end: P10 / P50 / P90 against the budget",
                cone,
                grid.next(24, 10),
                "currencyUSD",
                False,
            )
        )
        .with_panel(_ch(stat.Panel(), "Chance of exceeding the budget", chance, grid.next(8, 5), "percent", True))
        .with_panel(_ch(stat.Panel(), "Budget runs out on", runout, grid.next(8, 5), None, True))
        .with_panel(_ch(table.Panel(), "Every scope, latest projection", latest, grid.next(24, 10), None, True))
    )


def enforcement() -> dashboard.Dashboard:
    grid = Layout()
    board = _board("spendstream-enforcement", "spendstream: enforcement", ["enforcement", "prometheus"])
    rate = "[$__rate_interval]"
    return (
        board.with_panel(
            _prom(
                timeseries.Panel(),
                "Decisions by outcome",
                [(f"sum by (outcome) (rate(spendstream_cap_decisions_total{rate}))", "{{outcome}}")],
                grid.next(12, 8),
                "reqps",
            )
        )
        .with_panel(
            _prom(
                timeseries.Panel(),
                "Denials by scope",
                [(f"sum by (scope, period) (rate(spendstream_cap_denials_total{rate}))", "{{scope}} {{period}}")],
                grid.next(12, 8),
                "reqps",
            )
        )
        .with_panel(
            _prom(
                timeseries.Panel(),
                "Reservations outstanding",
                [("sum by (org) (spendstream_cap_reservations_open)", "{{org}}")],
                grid.next(8, 8),
                "short",
            )
        )
        .with_panel(
            _prom(
                timeseries.Panel(),
                "Reservations expired",
                [(f"sum(rate(spendstream_cap_reservations_expired_total{rate}))", "expired")],
                grid.next(8, 8),
                "reqps",
            )
        )
        .with_panel(
            _prom(
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
    board = _board("spendstream-pipeline", "spendstream: pipeline health", ["pipeline", "prometheus"])
    rate = "[$__rate_interval]"
    return (
        board.with_panel(
            _prom(
                timeseries.Panel(),
                "Consumer lag",
                [("sum by (partition) (spendstream_consumer_lag_messages)", "partition {{partition}}")],
                grid.next(12, 8),
                "short",
            )
        )
        .with_panel(
            _prom(
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
            _prom(
                timeseries.Panel(),
                "Dead letters by field",
                [(f"sum by (field) (rate(spendstream_events_dead_lettered_total{rate}))", "{{field}}")],
                grid.next(8, 8),
                "ops",
            )
        )
        .with_panel(
            _prom(
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
            _prom(
                timeseries.Panel(),
                "Redis - ClickHouse drift",
                [("sum by (org) (spendstream_spend_drift_nanos) / 1e9", "{{org}}")],
                grid.next(8, 8),
                "currencyUSD",
            )
        )
        .with_panel(
            _prom(
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


BOARDS = {
    "overview": overview,
    "cost-analysis": cost_analysis,
    "patterns": patterns,
    "forecast": forecast,
    "enforcement": enforcement,
    "pipeline": pipeline,
}


def render() -> dict[str, str]:
    """File name -> JSON text, for every dashboard."""
    out = {}
    for name, build in BOARDS.items():
        model = build().build()
        data = json.loads(json.dumps(model, cls=JSONEncoder))
        for number, panel in enumerate(data.get("panels", []), start=1):
            panel["id"] = number  # stable ids: links and alerts can point at a panel
        out[f"{name}.json"] = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return out


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
