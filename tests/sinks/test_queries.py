"""Every product query against the embedded ClickHouse, on seeded data with exact expected numbers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import UsageEvent
from schemas.settings import Settings
from sinks import queries
from sinks.tables import FORECASTS, ForecastRow
from sinks.usage_rows import usage_row
from sinks.usage_store import UsageStore

pytestmark = pytest.mark.stack

MON = datetime(2024, 5, 13, tzinfo=UTC)  # a Monday
START, END = MON, MON + timedelta(days=21)

# (day offset, hour, user, department, model, feature, cost, input, output)
SEED = [
    (0, 9, "ada", "eng", "gpt-4o", "chat", 1_000, 100, 10),
    (0, 9, "ada", "eng", "gpt-4o", "chat", 2_000, 200, 20),
    (0, 14, "bob", "eng", "gpt-4o-mini", "search", 500, 50, 5),
    (1, 14, "cyd", "sales", "gpt-4o", "chat", 4_000, 400, 40),
    (2, 23, "ada", "eng", "o3-mini", "code-review", 8_000, 800, 80),  # Wednesday 23:00 UTC = Thursday in Berlin
    (7, 9, "bob", "eng", "gpt-4o", "code-review", 16_000, 1600, 160),  # second week
    (7, 10, "dan", "sales", "gpt-4o", "code-review", 32_000, 3200, 320),
    (20, 12, "ada", "eng", "gpt-4o", "chat", 64_000, 6400, 640),  # third week (Sunday)
    (30, 12, "ada", "eng", "gpt-4o", "chat", 999_999, 1, 1),  # outside [START, END)
]


@pytest.fixture
def store(stack: Settings, ch_database: str) -> Iterator[UsageStore]:
    s = UsageStore(stack.clickhouse.host, stack.clickhouse.port, ch_database)
    s.migrate()
    rows = []
    for i, (day, hour, user, dept, model, feature, cost, inp, out) in enumerate(SEED):
        event = UsageEvent(
            event_id=f"e{i}",
            occurred_at=MON + timedelta(days=day, hours=hour, minutes=i),
            org_id="acme",
            department_id=dept,
            user_id=user,
            feature=feature,
            provider="openai",
            model=model,
            input_tokens=inp,
            output_tokens=out,
        )
        rows.append(usage_row(event, cost, "catalogue", 0, i))
    other = UsageEvent(
        event_id="x",
        occurred_at=MON,
        org_id="globex",
        user_id="zed",
        feature="chat",
        provider="openai",
        model="gpt-4o",
        input_tokens=1,
    )
    rows.append(usage_row(other, 123_456, "catalogue", 1, 0))
    s.insert_usage(rows, "seed")
    yield s


def run(store: UsageStore, query: queries.Query) -> list[tuple[object, ...]]:
    sql, params = query
    return store.query(sql, params)


def test_spend_by_each_dimension(store: UsageStore) -> None:
    db = store.database
    by_model = run(store, queries.spend_by(db, "model", "acme", START, END))
    assert [(r[0], r[1], r[2], r[3], r[7]) for r in by_model] == [
        ("gpt-4o", 6, 11_900, 1_190, 119_000),
        ("o3-mini", 1, 800, 80, 8_000),
        ("gpt-4o-mini", 1, 50, 5, 500),
    ]
    assert queries.SPEND_BY_COST == 7  # the demo's summary reads it (it read the last column: a type's cost)
    assert [(r[0], r[7]) for r in run(store, queries.spend_by(db, "user_id", "acme", START, END))] == [
        ("ada", 75_000),
        ("dan", 32_000),
        ("bob", 16_500),
        ("cyd", 4_000),
    ]
    assert [(r[0], r[7]) for r in run(store, queries.spend_by(db, "department_id", "acme", START, END))] == [
        ("eng", 91_500),
        ("sales", 36_000),
    ]
    assert [(r[0], r[7]) for r in run(store, queries.spend_by(db, "feature", "acme", START, END))] == [
        ("chat", 71_000),
        ("code-review", 56_000),
        ("search", 500),
    ]
    assert [(r[0], r[7]) for r in run(store, queries.spend_by(db, "provider", "acme", START, END))] == [
        ("openai", 127_500),
    ]


def test_daily_weekly_monthly_series(store: UsageStore) -> None:
    db = store.database
    daily = run(store, queries.series(db, "acme", "day", START, END))
    assert [(str(r[0]), r[7]) for r in daily] == [
        ("2024-05-13", 3_500),
        ("2024-05-14", 4_000),
        ("2024-05-15", 8_000),
        ("2024-05-20", 48_000),
        ("2024-06-02", 64_000),
    ]
    weekly = run(store, queries.series(db, "acme", "week", START, END))
    assert [(str(r[0]), r[7]) for r in weekly] == [
        ("2024-05-13", 15_500),
        ("2024-05-20", 48_000),
        ("2024-05-27", 64_000),
    ]
    monthly = run(store, queries.series(db, "acme", "month", START, END))
    assert [(str(r[0]), r[7]) for r in monthly] == [("2024-05-01", 63_500), ("2024-06-01", 64_000)]
    berlin = run(store, queries.series(db, "acme", "day", START, END, "Europe/Berlin"))
    assert [(str(r[0]), r[7]) for r in berlin][2] == ("2024-05-16", 8_000)


def test_top_cost_drivers(store: UsageStore) -> None:
    rows = run(store, queries.top_cost_drivers(store.database, "acme", START, END, limit=3))
    assert rows == [
        ("ada", "gpt-4o", "chat", 67_000, 3, round(67_000 / 127_500, 6)),
        ("dan", "gpt-4o", "code-review", 32_000, 1, round(32_000 / 127_500, 6)),
        ("bob", "gpt-4o", "code-review", 16_000, 1, round(16_000 / 127_500, 6)),
    ]


def test_top_cost_drivers_of_one_scope_and_of_many(store: UsageStore) -> None:
    eng = run(store, queries.top_cost_drivers(store.database, "acme", START, END, limit=2, scope="department/eng"))
    assert eng == [
        ("ada", "gpt-4o", "chat", 67_000, 3, round(67_000 / 91_500, 6)),
        ("bob", "gpt-4o", "code-review", 16_000, 1, round(16_000 / 91_500, 6)),
    ]
    both = run(
        store,
        queries.top_cost_drivers_by_scope(store.database, "acme", START, END, "department", ["eng", "sales", "x"], 2),
    )
    assert both == [
        ("eng", "ada", "gpt-4o", "chat", 67_000, 3, round(67_000 / 91_500, 6)),
        ("eng", "bob", "gpt-4o", "code-review", 16_000, 1, round(16_000 / 91_500, 6)),
        ("sales", "dan", "gpt-4o", "code-review", 32_000, 1, round(32_000 / 36_000, 6)),
        ("sales", "cyd", "gpt-4o", "chat", 4_000, 1, round(4_000 / 36_000, 6)),
    ]
    with pytest.raises(ValueError, match="scope"):
        queries.top_cost_drivers(store.database, "acme", START, END, scope="team/x")


def test_peak_hours(store: UsageStore) -> None:
    rows = run(store, queries.peak_hours(store.database, "acme", START, END))
    assert rows == [
        (1, 9, 3, 19_000),
        (1, 10, 1, 32_000),
        (1, 14, 1, 500),
        (2, 14, 1, 4_000),
        (3, 23, 1, 8_000),
        (7, 12, 1, 64_000),
    ]
    berlin = run(store, queries.peak_hours(store.database, "acme", START, END, "Europe/Berlin"))
    assert (4, 1, 1, 8_000) in berlin  # Wednesday 23:00 UTC is Thursday 01:00 in Berlin


def test_views_narrow_to_a_department_user_or_model(store: UsageStore) -> None:
    sales = queries.Narrow(department="sales")
    assert run(store, queries.peak_hours(store.database, "acme", START, END, narrow=sales)) == [
        (1, 10, 1, 32_000),
        (2, 14, 1, 4_000),
    ]
    bob = run(store, queries.feature_adoption(store.database, "acme", START, END, queries.Narrow(user="bob")))
    assert [(r[0], str(r[1])) for r in bob] == [("code-review", "2024-05-20"), ("search", "2024-05-13")]
    o3 = run(
        store, queries.top_cost_drivers(store.database, "acme", START, END, narrow=queries.Narrow(model="o3-mini"))
    )
    assert [(r[0], r[3], r[5]) for r in o3] == [("ada", 8_000, 1.0)]
    everyone = queries.Narrow()  # "*" throughout: no narrowing
    daily = run(store, queries.series(store.database, "acme", "day", START, END, narrow=everyone))
    assert daily == run(store, queries.series(store.database, "acme", "day", START, END))


def test_latest_forecasts_take_the_newest_per_scope(store: UsageStore) -> None:
    def made(at: datetime, scope: str, p50: int) -> ForecastRow:
        month = datetime(2024, 5, 1, tzinfo=UTC)
        return ForecastRow(
            at,
            "acme",
            scope,
            "monthly",
            "2024-05",
            month,
            month + timedelta(days=31),
            1,
            0,
            p50,
            0,
            0,
            9,
            0.5,
            None,
            0.0,
            "holt_winters",
        )

    store.insert(
        FORECASTS,
        [made(MON, "org/acme", 100), made(MON + timedelta(days=1), "org/acme", 200), made(MON, "user/ada", 7)],
    )
    rows = run(store, queries.latest_forecasts(store.database, "acme"))
    assert [(r[0], r[5]) for r in rows] == [("org/acme", 200), ("user/ada", 7)]
    first_day = run(store, queries.latest_forecasts(store.database, "acme", MON, MON + timedelta(hours=1)))
    assert [(r[0], r[5]) for r in first_day] == [("org/acme", 100), ("user/ada", 7)]


def test_feature_adoption(store: UsageStore) -> None:
    rows = run(store, queries.feature_adoption(store.database, "acme", START, END))
    assert [(r[0], str(r[1]), r[2], r[3]) for r in rows] == [
        ("chat", "2024-05-13", 2, 3),
        ("chat", "2024-05-27", 1, 1),
        ("code-review", "2024-05-13", 1, 1),
        ("code-review", "2024-05-20", 2, 2),
        ("search", "2024-05-13", 1, 1),
    ]


def test_feature_adoption_cuts_weeks_at_monday_midnight_in_the_orgs_zone(store: UsageStore) -> None:
    """Weeks were cut at UTC midnight: 8 of 30 cells of a Berlin org's adoption table were a week off."""
    sunday_night = UsageEvent(
        event_id="late",
        occurred_at=datetime(2024, 5, 19, 22, 30, tzinfo=UTC),  # Monday 00:30 in Berlin
        org_id="acme",
        user_id="eve",
        feature="late-night",
        provider="openai",
        model="gpt-4o",
        input_tokens=1,
    )
    store.insert_usage([usage_row(sunday_night, 1, "catalogue", 2, 0)], "late")
    week = {
        zone: [str(r[1]) for r in run(store, queries.feature_adoption(store.database, "acme", START, END, None, zone))
               if r[0] == "late-night"]
        for zone in ("UTC", "Europe/Berlin")
    }  # fmt: skip
    assert week == {"UTC": ["2024-05-13"], "Europe/Berlin": ["2024-05-20"]}


def test_spend_by_scopes_matches_what_redis_counts(store: UsageStore) -> None:
    rows = {
        r[0]: r[3] for r in run(store, queries.period_spend_by_scopes(store.database, "acme", START, START, START, END))
    }
    assert rows["org/acme"] == 127_500
    assert rows["department/eng"] == 91_500 and rows["user/ada"] == 75_000 and rows["model/o3-mini"] == 8_000
    assert rows["feature/search"] == 500 and rows["provider/openai"] == 127_500
    assert "org/globex" not in rows


def test_builders_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="dimension"):
        queries.spend_by("db", "cost_nanos; DROP TABLE x", "acme", START, END)
    with pytest.raises(ValueError, match="database"):
        queries.spend_by("db; DROP", "model", "acme", START, END)
    with pytest.raises(ValueError, match="granularity"):
        queries.series("db", "acme", "year", START, END)
    with pytest.raises(ValueError, match="tz-aware"):
        queries.series("db", "acme", "day", datetime(2024, 1, 1), END)
    sql, params = queries.spend_by("db", "model", "acme", START, END)
    assert "acme" not in sql and params["org"] == "acme"  # values are bound, never spliced
