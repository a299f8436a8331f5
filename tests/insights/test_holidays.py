"""An org's holiday calendar: a holiday's dip is forecast as the holiday it is, and a quiet holiday neither
raises an alarm nor teaches the spike detector that its hours are quiet."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from insights.forecast import SpendForecaster
from insights.spikes import SpikeDetector
from schemas.holiday_calendar import holiday_dates

START = date(2026, 9, 7)  # a Monday
CALENDAR = "US"
HOLIDAYS = holiday_dates(CALENDAR, (2026,))


def spend(day: date) -> float:
    """$100 a weekday, $20 a weekend day, and a holiday as quiet as a weekend day."""
    return 20.0 if day.weekday() >= 5 or day in HOLIDAYS else 100.0


def test_the_calendar_has_the_countrys_holidays() -> None:
    assert {date(2026, 10, 12), date(2026, 11, 26), date(2026, 12, 25)} <= HOLIDAYS  # Columbus, Thanksgiving, Christmas
    assert date(2026, 11, 27) not in HOLIDAYS


def test_a_month_with_a_holiday_is_projected_with_its_dip() -> None:
    """Thanksgiving (Thursday) is still to come on Monday November 23: with the calendar the month's
    projection has it as a holiday; without, as a weekday."""
    today = date(2026, 11, 23)
    actual = sum(spend(date(2026, 11, d)) for d in range(23, 31))
    projections = {}
    for calendar in (HOLIDAYS, frozenset()):
        model = SpendForecaster()
        model.use_holidays(calendar)
        day = START
        while day < today:
            model.learn_day(day, spend(day))
            day += timedelta(days=1)
        projections[bool(calendar)] = model.project(today, date(2026, 11, 30), 0.0, 0.0, 0.0).p50
    assert abs(projections[True] - actual) < abs(projections[False] - actual)
    assert projections[False] - projections[True] == pytest.approx(60.0, abs=25.0)  # a weekday against a holiday


def test_a_quiet_holiday_is_not_learnt_as_the_norm_of_its_hours() -> None:
    def hours(day: date) -> list[tuple[int, float]]:
        base = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        return [(base + h * 3_600, 0.0 if day in HOLIDAYS else (10.0 if 9 <= h < 18 else 1.0)) for h in range(24)]

    with_calendar, without = (
        SpikeDetector(seasons=24, bucket_s=3_600, warmup=3),
        SpikeDetector(seasons=24, bucket_s=3_600, warmup=3),
    )
    day = date(2026, 11, 2)
    flagged = []
    while day <= date(2026, 11, 30):
        if day.weekday() < 5 or day in HOLIDAYS:
            for bucket, cost in hours(day):
                flagged.append(with_calendar.observe("acme|org/acme", bucket, cost, learn=day not in HOLIDAYS))
                without.observe("acme|org/acme", bucket, cost)
        day += timedelta(days=1)
    assert not any(flagged)  # the quiet holiday (and the day after it) raised nothing
    eleven = (11 * 3_600 // 3_600) % 24
    kept = with_calendar.entities["acme|org/acme"].pair(eleven)[0].get()
    lowered = without.entities["acme|org/acme"].pair(eleven)[0].get()
    assert kept == pytest.approx(10.0) and lowered < 9.5  # without the calendar, Thanksgiving's quiet was learnt


def test_the_runner_reads_each_orgs_calendar_in_its_zone() -> None:
    from schemas.budgets import OrgConfig
    from schemas.config_records import ConfigState
    from streams.spike_records import holidays_at, org_holidays

    config = ConfigState()
    config.orgs["acme"] = OrgConfig("acme", timezone="America/Los_Angeles", holidays="US")
    config.orgs["globex"] = OrgConfig("globex")  # no calendar
    # 2026-11-27 02:00 UTC is still Thanksgiving evening in Los Angeles
    holiday = holidays_at(config, datetime(2026, 11, 27, 2, tzinfo=UTC))
    assert holiday("acme|user/ada") and not holiday("globex|user/bob") and not holiday("initech|org/initech")
    assert not holidays_at(config, datetime(2026, 11, 27, 9, tzinfo=UTC))("acme|org/acme")  # Friday there
    assert date(2027, 1, 1) in org_holidays("acme", "US", date(2026, 1, 1), date(2026, 11, 27))  # next year's too
    assert org_holidays("acme", "XX", date(2026, 1, 1), date(2026, 11, 27)) == frozenset()  # logged, not fatal
