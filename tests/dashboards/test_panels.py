"""Every ClickHouse panel and variable of the dashboards, run on the embedded ClickHouse with seeded data."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from dashboards import generate
from schemas.events import UsageEvent
from schemas.settings import Settings
from sinks.tables import CONFIG_AUDIT, FORECASTS, ConfigAuditRow, ForecastRow
from sinks.usage_rows import usage_row
from sinks.usage_store import UsageStore
from tests.dashboards.grafana_expand import expand

pytestmark = pytest.mark.stack

BOARDS = Path(generate.__file__).resolve().parent / "grafana" / "dashboards"
MON = datetime(2024, 5, 13, tzinfo=UTC)  # a Monday
START, END = MON, MON + timedelta(days=21)  # the dashboards' time range in these tests
INTERVAL_S = 86_400
ALL = {"org": "acme", "department": "*", "user": "*", "model": "*", "scope": "org/acme", "timezone": "UTC"}

# (day offset, hour, user, department, provider, model, feature, cost nano-USD, input, output)
SEED = [
    (0, 9, "ada", "eng", "openai", "gpt-4o", "chat", 1_000, 100, 10),
    (0, 9, "ada", "eng", "openai", "gpt-4o", "chat", 2_000, 200, 20),
    (0, 14, "bob", "eng", "openai", "gpt-4o-mini", "search", 500, 50, 5),
    (1, 14, "cyd", "sales", "azure", "gpt-4o", "chat", 4_000, 400, 40),
    (2, 23, "ada", "eng", "openai", "o3-mini", "code-review", 8_000, 800, 80),
    (7, 9, "bob", "eng", "openai", "gpt-4o", "code-review", 16_000, 1600, 160),
    (7, 10, "dan", "sales", "azure", "gpt-4o", "code-review", 32_000, 3200, 320),
    (20, 12, "ada", "eng", "openai", "gpt-4o", "chat", 64_000, 6400, 640),  # Sunday 2 June
    (30, 12, "ada", "eng", "openai", "gpt-4o", "chat", 999_999, 1, 1),  # after the range
]
IN_RANGE = [row for row in SEED if row[0] < 21]


@pytest.fixture(scope="module")
def client(stack: Settings) -> Iterator[Any]:
    database = f"t_dash_{datetime.now().strftime('%H%M%S%f')}"
    store = UsageStore(stack.clickhouse.host, stack.clickhouse.port, database)
    store.migrate()
    rows = []
    for i, (day, hour, user, dept, provider, model, feature, cost, inp, out) in enumerate(SEED):
        event = UsageEvent(
            event_id=f"e{i}",
            occurred_at=MON + timedelta(days=day, hours=hour, minutes=i),
            org_id="acme",
            department_id=dept,
            user_id=user,
            feature=feature,
            provider=provider,
            model=model,
            input_tokens=inp,
            output_tokens=out,
        )
        rows.append(usage_row(event, cost, "catalogue", 0, i))
    other = UsageEvent(
        event_id="x", occurred_at=MON, org_id="globex", user_id="zed", feature="chat", provider="openai", model="gpt-4o"
    )
    rows.append(usage_row(other, 7_777, "catalogue", 0, 99))
    store.insert_usage(rows, "seed")
    budget = '{{"limit_nanos": {limit}, "mode": "hard", "stages": [50, 80, 100]}}'
    store.insert(
        CONFIG_AUDIT,
        [
            ConfigAuditRow("budget/acme/department/eng/monthly", "budget", budget.format(limit=100_000), 0, 0, 1),
            ConfigAuditRow("budget/acme/department/sales/monthly", "budget", budget.format(limit=50_000), 0, 0, 2),
            ConfigAuditRow("budget/acme/department/sales/monthly", "budget", "", 1, 0, 3),  # removed since
            ConfigAuditRow("budget/acme/user/ada/monthly", "budget", budget.format(limit=128_000), 0, 0, 4),
            ConfigAuditRow("budget/acme/user/bob/daily", "budget", budget.format(limit=1_000), 0, 0, 5),  # not monthly
            ConfigAuditRow("org/globex", "org", '{"timezone": "Asia/Tokyo"}', 0, 0, 6),
        ],
    )

    def forecast(
        at: datetime, scope: str, spent: int, p10: int, p50: int, p90: int, p: float, runout: date | None
    ) -> ForecastRow:
        start = datetime(2024, 5, 1, tzinfo=UTC)
        return ForecastRow(
            at,
            "acme",
            scope,
            "monthly",
            "2024-05",
            start,
            datetime(2024, 6, 1, tzinfo=UTC),
            spent,
            p10,
            p50,
            p90,
            p50,
            120_000,
            p,
            runout,
            0.01,
            "holt_winters",
        )

    store.insert(
        FORECASTS,
        [
            forecast(MON + timedelta(days=3), "org/acme", 40_000, 70_000, 90_000, 120_000, 0.05, None),
            forecast(MON + timedelta(days=10), "org/acme", 63_500, 110_000, 130_000, 160_000, 0.61, date(2024, 5, 29)),
            forecast(MON + timedelta(days=10), "department/eng", 27_500, 40_000, 50_000, 60_000, 0.0, None),
        ],
    )
    ch = clickhouse_connect.get_client(host=stack.clickhouse.host, port=stack.clickhouse.port, database=database)
    yield ch
    ch.command(f"DROP DATABASE IF EXISTS {database}")


def panels() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(BOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        out.extend((f"{path.stem}/{panel['title']}", panel) for panel in board["panels"])
    return out


def run(client: Any, sql: str, variables: dict[str, str] | None = None) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in client.query(expand(sql, START, END, INTERVAL_S, variables or ALL)).result_rows]


def usd(nanos: int) -> float:
    return nanos / 1e9


def totals(key: Any, rows: list[tuple[Any, ...]] = IN_RANGE) -> dict[Any, int]:
    out: dict[Any, int] = defaultdict(int)
    for row in rows:
        out[key(row)] += row[7]
    return out


def by_cost(column: int, limit: int) -> list[tuple[Any, ...]]:
    cost = totals(lambda r: r[column])
    requests = defaultdict(int)
    for row in IN_RANGE:
        requests[row[column]] += 1
    ordered = sorted(cost, key=lambda k: (-cost[k], k))[:limit]
    return [(k, usd(cost[k]), requests[k]) for k in ordered]


def day_of(row: tuple[Any, ...]) -> date:
    return (MON + timedelta(days=row[0])).date()


def series(key: Any) -> list[tuple[Any, ...]]:
    cost = totals(key)
    return [(k, usd(cost[k])) for k in sorted(cost)]


TOTAL = sum(row[7] for row in IN_RANGE)
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "overview/Spend in the time range": [(usd(TOTAL),)],
    "overview/Month to date": [(usd(64_000),)],  # 1-3 June: ada's Sunday request
    "overview/Projected month end (P50) and budget": [(usd(130_000), usd(120_000))],
    "overview/Tokens by model": sorted(
        (datetime(d.year, d.month, d.day, tzinfo=UTC), m, t)
        for (d, m), t in {
            (day_of(r), r[5]): sum(x[8] + x[9] for x in IN_RANGE if day_of(x) == day_of(r) and x[5] == r[5])
            for r in IN_RANGE
        }.items()
    ),
    "overview/Top cost drivers": [
        ("ada", "gpt-4o", "chat", usd(67_000), 3),
        ("dan", "gpt-4o", "code-review", usd(32_000), 1),
        ("bob", "gpt-4o", "code-review", usd(16_000), 1),
        ("ada", "o3-mini", "code-review", usd(8_000), 1),
        ("cyd", "gpt-4o", "chat", usd(4_000), 1),
        ("bob", "gpt-4o-mini", "search", usd(500), 1),
    ],
    "overview/Monthly budget used, by department": [("eng", 64.0)],  # sales' budget was removed
    "overview/Monthly budget used, by user": [("ada", 50.0)],  # bob's budget is daily
    "cost-analysis/Cost by provider": sorted(
        (datetime(k[0].year, k[0].month, k[0].day, tzinfo=UTC), k[1], usd(v))
        for k, v in totals(lambda r: (day_of(r), r[4])).items()
    ),
    "cost-analysis/Cost by model": by_cost(5, 20),
    "cost-analysis/Cost by feature": by_cost(6, 20),
    "cost-analysis/Cost by department": by_cost(3, 50),
    "cost-analysis/Cost by user (top 20)": by_cost(2, 20),
    "cost-analysis/Daily cost": series(day_of),
    "cost-analysis/Weekly cost": series(lambda r: day_of(r) - timedelta(days=day_of(r).weekday())),
    "cost-analysis/Monthly cost": [(date(2024, 5, 1), usd(63_500)), (date(2024, 6, 1), usd(64_000))],
    "patterns/Peak hours: weekday (1 = Monday) x hour, in the org's time zone": [
        (1, 9, 3, usd(19_000)),
        (1, 10, 1, usd(32_000)),
        (1, 14, 1, usd(500)),
        (2, 14, 1, usd(4_000)),
        (3, 23, 1, usd(8_000)),
        (7, 12, 1, usd(64_000)),
    ],
    # Mondays 13 and 20 May: 51,500 over two days; the other weekdays once each
    "patterns/Weekday profile: average daily cost": [
        (1, usd(51_500) / 2),
        (2, usd(4_000)),
        (3, usd(8_000)),
        (7, usd(64_000)),
    ],
    "patterns/Feature adoption: users per week": [
        (date(2024, 5, 13), "chat", 2),
        (date(2024, 5, 13), "code-review", 1),
        (date(2024, 5, 13), "search", 1),
        (date(2024, 5, 20), "code-review", 2),
        (date(2024, 5, 27), "chat", 1),
    ],
    "forecast/Projected period end: P10 / P50 / P90 against the budget": [
        (MON + timedelta(days=3), usd(70_000), usd(90_000), usd(120_000), usd(40_000), usd(120_000)),
        (MON + timedelta(days=10), usd(110_000), usd(130_000), usd(160_000), usd(63_500), usd(120_000)),
    ],
    "forecast/Chance of exceeding the budget": [(61.0,)],
    "forecast/Budget runs out on": [("2024-05-29",)],
    "forecast/Every scope, latest projection": [
        (
            "department/eng",
            "monthly",
            "2024-05",
            usd(27_500),
            usd(40_000),
            usd(50_000),
            usd(60_000),
            usd(120_000),
            0.0,
            None,
        ),
        (
            "org/acme",
            "monthly",
            "2024-05",
            usd(63_500),
            usd(110_000),
            usd(130_000),
            usd(160_000),
            usd(120_000),
            0.61,
            "2024-05-29",
        ),
    ],
}


def test_every_clickhouse_panel_has_an_expected_result() -> None:
    clickhouse = {name for name, panel in panels() if panel["datasource"]["type"] == "grafana-clickhouse-datasource"}
    assert clickhouse == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_panel_query(client: Any, name: str) -> None:
    panel = dict(panels())[name]
    (target,) = panel["targets"]
    rows = run(client, target["rawSql"])
    if rows and isinstance(rows[0][0], datetime) and rows[0][0].tzinfo is None:
        rows = [(row[0].replace(tzinfo=UTC), *row[1:]) for row in rows]
    assert rows == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_panel_columns_fit_the_panel_type(client: Any, name: str) -> None:
    """Time series need a time column first, then numbers; stats and gauges need numbers (a stat may show
    one text); tables and bar charts need a label column before their numbers."""
    panel = dict(panels())[name]
    (target,) = panel["targets"]
    result = client.query(expand(target["rawSql"], START, END, INTERVAL_S, ALL))
    names, types = result.column_names, [t.base_type for t in result.column_types]
    numeric = {"Float64", "Float32", "UInt64", "Int64", "UInt32", "Int32", "UInt16", "UInt8"}
    if panel["type"] == "timeseries":
        assert target["format"] == 0
        assert names[0] in ("time", "day", "week", "month") and types[0] in ("DateTime", "DateTime64", "Date")
        assert types[-1] in numeric
    elif panel["type"] in ("stat", "bargauge"):
        values = types[1:] if panel["type"] == "bargauge" else types  # a gauge's first column labels it
        assert all(t in numeric for t in values) or tuple(names) == ("runs_out_on",)
    else:
        assert target["format"] == 1 and types[-1] in numeric | {"Nullable", "String"}


def test_filters_narrow_every_usage_panel(client: Any) -> None:
    panel = dict(panels())["overview/Spend in the time range"]
    sql = panel["targets"][0]["rawSql"]
    assert run(client, sql, {**ALL, "department": "sales"}) == [(usd(36_000),)]
    assert run(client, sql, {**ALL, "user": "bob"}) == [(usd(16_500),)]
    assert run(client, sql, {**ALL, "model": "o3-mini", "department": "eng"}) == [(usd(8_000),)]
    assert run(client, sql, {**ALL, "org": "globex"}) == [(usd(7_777),)]


def test_template_variables(client: Any) -> None:
    board = json.loads((BOARDS / "overview.json").read_text())
    values = {v["name"]: [row[0] for row in run(client, v["query"])] for v in board["templating"]["list"]}
    assert values == {
        "org": ["acme", "globex"],
        "timezone": ["UTC"],
        "department": ["eng", "sales"],
        "user": ["ada", "bob", "cyd", "dan"],
        "model": ["gpt-4o", "gpt-4o-mini", "o3-mini"],
    }
    forecast_board = json.loads((BOARDS / "forecast.json").read_text())
    scope = next(v for v in forecast_board["templating"]["list"] if v["name"] == "scope")
    assert [row[0] for row in run(client, scope["query"])] == ["department/eng", "org/acme"]


def test_peak_hours_are_read_in_the_orgs_time_zone(client: Any) -> None:
    board = json.loads((BOARDS / "patterns.json").read_text())
    zone = next(v for v in board["templating"]["list"] if v["name"] == "timezone")
    assert zone["hide"] == 2  # not a choice: the org's config decides
    assert run(client, zone["query"]) == [("UTC",)]  # acme sets none
    assert run(client, zone["query"], {**ALL, "org": "globex"}) == [("Asia/Tokyo",)]
    peak = dict(panels())["patterns/Peak hours: weekday (1 = Monday) x hour, in the org's time zone"]
    globex = {**ALL, "org": "globex", "timezone": "Asia/Tokyo"}
    assert run(client, peak["targets"][0]["rawSql"], globex) == [(1, 9, 1, usd(7_777))]  # Monday 00:00 UTC
