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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from grafana_foundation_sdk.builders import barchart, bargauge, dashboard, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.grafana import (
    BUILDER_DATABASE,
    FILTERS,
    MONTH,
    TOKENS,
    Layout,
    ch_panel,
    from_builder,
    new_board,
    scope_variables,
    variable,
)
from dashboards.health import enforcement, pipeline
from sinks import queries
from sinks.queries import Narrow

OUT = Path(__file__).resolve().parent / "grafana" / "dashboards"
SOME_TIME = datetime(2000, 1, 1, tzinfo=UTC)  # builders need a range; from_builder puts the dashboard's in
LATER = SOME_TIME + timedelta(hours=1)


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
    board = scope_variables(new_board("spendstream-overview", "spendstream: overview", ["overview"]))
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
    drivers = from_builder(
        queries.top_cost_drivers(BUILDER_DATABASE, "", SOME_TIME, LATER, limit=10, narrow=Narrow()),
        "user_id, model, feature, cost_nanos / 1e9 AS cost_usd, requests",
        "cost_usd DESC, user_id, model, feature",
        fixed=("limit",),
    )
    return (
        board.with_panel(ch_panel(stat.Panel(), "Spend in the time range", spend, grid.next(6, 4), "currencyUSD", True))
        .with_panel(ch_panel(stat.Panel(), "Month to date", month, grid.next(6, 4), "currencyUSD", True))
        .with_panel(
            ch_panel(
                stat.Panel(), "Projected month end (P50) and budget", projected, grid.next(12, 4), "currencyUSD", True
            )
        )
        .with_panel(ch_panel(timeseries.Panel(), "Tokens by model", tokens, grid.next(12, 9), "short", False))
        .with_panel(ch_panel(table.Panel(), "Top cost drivers", drivers, grid.next(12, 9), None, True))
        .with_panel(
            ch_panel(
                bargauge.Panel(),
                "Monthly budget used, by department",
                _budget_used("department"),
                grid.next(12, 8),
                "percent",
                True,
            )
        )
        .with_panel(
            ch_panel(
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
    board = scope_variables(new_board("spendstream-cost", "spendstream: cost analysis", ["cost"]))
    by_provider = (
        "SELECT $__timeInterval(bucket) AS time, provider, sum(cost_nanos) / 1e9 AS cost_usd FROM usage_hourly "
        f"WHERE $__timeFilter(bucket) AND {FILTERS} GROUP BY time, provider ORDER BY time, provider"
    )

    def by(column: str, limit: int) -> str:
        return (
            f"SELECT {column}, sum(cost_nanos) / 1e9 AS cost_usd, sum(requests) AS requests FROM usage_hourly "
            f"WHERE $__timeFilter(bucket) AND {FILTERS} GROUP BY {column} ORDER BY cost_usd DESC, {column} LIMIT {limit}"
        )

    def series(granularity: str) -> str:  # cut in the org's time zone, as its budgets are
        return from_builder(
            queries.series(BUILDER_DATABASE, "", granularity, SOME_TIME, LATER, "", Narrow()),
            f"period AS {granularity}, cost_nanos / 1e9 AS cost_usd",
            granularity,
        )

    board = board.with_panel(
        ch_panel(timeseries.Panel(), "Cost by provider", by_provider, grid.next(24, 8), "currencyUSD", False)
    )
    for title, column, limit in (
        ("Cost by model", "model", 20),
        ("Cost by feature", "feature", 20),
        ("Cost by department", "department_id", 50),
        ("Cost by user (top 20)", "user_id", 20),
    ):
        board = board.with_panel(
            ch_panel(barchart.Panel(), title, by(column, limit), grid.next(12, 8), "currencyUSD", True)
        )
    for title, granularity in (("Daily cost", "day"), ("Weekly cost", "week"), ("Monthly cost", "month")):
        board = board.with_panel(
            ch_panel(timeseries.Panel(), title, series(granularity), grid.next(8, 8), "currencyUSD", False)
        )
    return board


def patterns() -> dashboard.Dashboard:
    grid = Layout()
    board = scope_variables(new_board("spendstream-patterns", "spendstream: usage patterns", ["patterns"]))
    everyone = Narrow()  # from_builder binds it to the dashboard's department, user and model variables
    peak = from_builder(
        queries.peak_hours(BUILDER_DATABASE, "", SOME_TIME, LATER, "", everyone),
        "weekday, hour, requests, cost_nanos / 1e9 AS cost_usd",
        "weekday, hour",
    )
    weekday = (
        "SELECT toDayOfWeek(bucket) AS weekday, sum(cost_nanos) / 1e9 / uniqExact(toDate(bucket)) AS avg_daily_cost_usd "
        f"FROM usage_daily WHERE $__timeFilter(bucket) AND {FILTERS} GROUP BY weekday ORDER BY weekday"
    )
    adoption = from_builder(
        queries.feature_adoption(BUILDER_DATABASE, "", SOME_TIME, LATER, everyone, ""),
        "week, feature, users",
        "week, feature",
    )
    return (
        board.with_panel(
            ch_panel(
                table.Panel(),
                "Peak hours: weekday (1 = Monday) x hour, in the org's time zone",
                peak,
                grid.next(12, 12),
                None,
                True,
            )
        )
        .with_panel(
            ch_panel(
                barchart.Panel(), "Weekday profile: average daily cost", weekday, grid.next(12, 12), "currencyUSD", True
            )
        )
        .with_panel(
            ch_panel(timeseries.Panel(), "Feature adoption: users per week", adoption, grid.next(24, 8), "short", False)
        )
    )


def forecast() -> dashboard.Dashboard:
    grid = Layout()
    scope = "SELECT DISTINCT scope FROM forecasts WHERE org_id = '${org}' ORDER BY scope"
    board = (
        new_board("spendstream-forecast", "spendstream: forecasts", ["forecast"])
        .with_variable(variable("org", "Org", "SELECT DISTINCT org_id FROM usage_daily ORDER BY org_id", False))
        .with_variable(variable("scope", "Scope", scope, False))
    )
    where = "org_id = '${org}' AND scope = '${scope}' AND period = 'monthly' AND $__timeFilter(at)"
    cone = (
        "SELECT at AS time, p10_nanos / 1e9 AS p10, p50_nanos / 1e9 AS p50, p90_nanos / 1e9 AS p90, "
        f"spent_nanos / 1e9 AS spent, budget_nanos / 1e9 AS budget FROM forecasts WHERE {where} ORDER BY at"
    )
    chance = f"SELECT argMax(probability_over, at) * 100 AS chance_over_budget FROM forecasts WHERE {where}"
    runout = f"SELECT toString(argMax(runout_date, at)) AS runs_out_on FROM forecasts WHERE {where}"
    latest = from_builder(
        queries.latest_forecasts(BUILDER_DATABASE, "", SOME_TIME, LATER),
        "scope, period, period_key, spent_nanos / 1e9 AS spent_usd, p10 / 1e9 AS p10_usd, p50 / 1e9 AS p50_usd, "
        "p90 / 1e9 AS p90_usd, budget / 1e9 AS budget_usd, chance_over, toString(runout_date) AS runs_out_on",
        "scope, period, period_key",
    )
    return (
        board.with_panel(
            ch_panel(
                timeseries.Panel(),
                "Projected period end: P10 / P50 / P90 against the budget",
                cone,
                grid.next(24, 10),
                "currencyUSD",
                False,
            )
        )
        .with_panel(ch_panel(stat.Panel(), "Chance of exceeding the budget", chance, grid.next(8, 5), "percent", True))
        .with_panel(ch_panel(stat.Panel(), "Budget runs out on", runout, grid.next(8, 5), None, True))
        .with_panel(ch_panel(table.Panel(), "Every scope, latest projection", latest, grid.next(24, 10), None, True))
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
