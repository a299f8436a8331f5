"""Building blocks of the Grafana dashboards: the datasources, the ClickHouse query target, the scope
variables, panel placement, and :func:`from_builder`, which renders a query of :mod:`sinks.queries`
for Grafana so a dashboard panel and the product read the same SQL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    GridPos,
    VariableHide,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from sinks.queries import Query

__all__ = [
    "ALL",
    "BUILDER_DATABASE",
    "CLICKHOUSE",
    "FILTERS",
    "MONTH",
    "PROMETHEUS",
    "TOKENS",
    "ClickHouseQuery",
    "Layout",
    "ch_panel",
    "from_builder",
    "new_board",
    "org_timezone",
    "prom_panel",
    "scope_variables",
    "variable",
]

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


class ClickHouseQuery(variants.Dataquery):
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


def variable(name: str, label: str, sql: str, include_all: bool) -> dashboard.QueryVariable:
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(CLICKHOUSE)
        .query(sql)
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    if include_all:
        variable = variable.include_all(True).all_value(ALL).current(VariableOption(text="All", value=ALL))
    return variable


def scope_variables(board: dashboard.Dashboard) -> dashboard.Dashboard:
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
        board.with_variable(variable("org", "Org", org, include_all=False))
        .with_variable(org_timezone())
        .with_variable(variable("department", "Department", dept, include_all=True))
        .with_variable(variable("user", "User", user, include_all=True))
        .with_variable(variable("model", "Model", model, include_all=True))
    )


def org_timezone() -> dashboard.QueryVariable:
    """The org's time zone, as its config on config.v1 sets it (UTC when it sets none), hidden: the
    patterns read hours and weekdays in it, as the budgets cut their periods in it."""
    sql = (
        "SELECT if(zone = '', 'UTC', zone) FROM (SELECT argMax(JSONExtractString(value, 'timezone'), "
        "(kafka_partition, kafka_offset)) AS zone FROM config_audit WHERE key = concat('org/', '${org}'))"
    )
    return variable("timezone", "Time zone", sql, include_all=False).hide(VariableHide.HIDE_VARIABLE)


def new_board(uid: str, title: str, tags: list[str]) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(["spendstream", *tags])
        .time("now-30d", "now")
        .refresh("1m")
        .timezone("utc")
        .editable()
    )


def ch_panel(panel: Any, title: str, sql: str, pos: GridPos, unit: str | None, table_format: bool) -> Any:
    built = panel.title(title).datasource(CLICKHOUSE).grid_pos(pos).with_target(ClickHouseQuery(sql, table_format))
    return built.unit(unit) if unit else built


def prom_panel(panel: Any, title: str, exprs: list[tuple[str, str]], pos: GridPos, unit: str | None) -> Any:
    built = panel.title(title).datasource(PROMETHEUS).grid_pos(pos)
    for i, (expr, legend) in enumerate(exprs):
        built = built.with_target(
            prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i)).datasource(PROMETHEUS)
        )
    return built.unit(unit) if unit else built


# the database name the builders are called with here; the panels read the datasource's default database
BUILDER_DATABASE = "spendstream_dashboard"
# how each builder parameter reads in a panel: Grafana's variables and time-range macros
_BINDINGS = {
    "org": "'${org}'",
    "department": "'${department}'",
    "user": "'${user}'",
    "model": "'${model}'",
    "tz": "'${timezone}'",
    "start": "$__fromTime",
    "end": "$__toTime",
}
_PLACEHOLDER = re.compile(r"\{(\w+):[^{}]+\}")


def from_builder(query: Query, columns: str, order: str, fixed: tuple[str, ...] = ()) -> str:
    """A builder's SQL with Grafana's variables for its parameters, reshaped for a panel (``columns``
    selected from it, say nano-USD as USD, in ``order``). Parameters named in ``fixed`` keep the value
    the builder was given (a row limit, say)."""
    sql, params = query

    def bind(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in fixed:
            value = params[name]
            if not isinstance(value, int):
                raise ValueError(f"{name}: only whole numbers are written into a panel's SQL")
            return str(value)
        if name not in _BINDINGS:
            raise ValueError(f"{name}: no Grafana variable stands for this builder parameter")
        return _BINDINGS[name]

    inner = _PLACEHOLDER.sub(bind, sql.replace(f"{BUILDER_DATABASE}.", ""))
    return f"SELECT {columns} FROM ({inner}) ORDER BY {order}"
