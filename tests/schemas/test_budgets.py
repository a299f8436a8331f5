from datetime import UTC, datetime

import pytest

from schemas import Budget, BudgetError, BudgetMode, Period, ScopeKind, period_bounds, period_key


def budget(**overrides: object) -> Budget:
    fields: dict[str, object] = {
        "org_id": "acme",
        "scope": ScopeKind.DEPARTMENT,
        "scope_id": "eng",
        "period": Period.MONTHLY,
        "limit_nanos": 1_000_000_000_000,
        "mode": BudgetMode.HARD,
        "stages": (50, 80, 100),
        "timezone": "Europe/Berlin",
    }
    fields.update(overrides)
    return Budget(**fields)  # type: ignore[arg-type]


def test_periods_are_cut_in_the_orgs_time_zone() -> None:
    at = datetime(2024, 3, 31, 22, 30, tzinfo=UTC)  # already April 1st, 00:30 in Berlin (CEST)
    start, end = period_bounds(at, Period.MONTHLY, "Europe/Berlin")
    assert start == datetime(2024, 3, 31, 22, 0, tzinfo=UTC)
    assert end == datetime(2024, 4, 30, 22, 0, tzinfo=UTC)
    assert period_key(at, Period.MONTHLY, "Europe/Berlin") == "2024-04"
    assert period_key(at, Period.MONTHLY) == "2024-03"


def test_daily_period_across_a_dst_change_is_23_hours() -> None:
    start, end = period_bounds(datetime(2024, 3, 31, 12, tzinfo=UTC), Period.DAILY, "Europe/Berlin")
    assert (start, end) == (datetime(2024, 3, 30, 23, tzinfo=UTC), datetime(2024, 3, 31, 22, tzinfo=UTC))


def test_weekly_periods_start_on_monday() -> None:
    start, end = period_bounds(datetime(2024, 5, 19, 23, 59, tzinfo=UTC), Period.WEEKLY)  # a Sunday
    assert (start, end) == (datetime(2024, 5, 13, tzinfo=UTC), datetime(2024, 5, 20, tzinfo=UTC))
    assert period_key(datetime(2024, 5, 19, tzinfo=UTC), Period.WEEKLY) == "2024-W20"


def test_stage_crossings_fire_once_each() -> None:
    b = budget(limit_nanos=1000)
    assert b.crossed_stages(0, 499) == ()
    assert b.crossed_stages(0, 500) == (50,)
    assert b.crossed_stages(499, 1000) == (50, 80, 100)
    assert b.crossed_stages(500, 799) == ()
    assert b.crossed_stages(1000, 5000) == ()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"limit_nanos": 0}, "limit_nanos"),
        ({"limit_nanos": 1.5}, "limit_nanos"),
        ({"stages": (80, 50)}, "stages"),
        ({"stages": ()}, "stages"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"scope_id": "a:b"}, "scope_id"),
        ({"org_id": "{acme}"}, "org_id"),
        ({"scope": ScopeKind.ORG, "scope_id": "other"}, "scope_id"),
    ],
)
def test_bad_budgets_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(BudgetError, match=f"^{field}"):
        budget(**overrides)


def test_key() -> None:
    assert budget().key == "department/eng/monthly"
    assert budget(scope=ScopeKind.MODEL, scope_id="bedrock/claude-v2:1").scope_id == "bedrock/claude-v2:1"
