"""An org's holiday calendar: a holiday's dip is forecast as the holiday it is, and a quiet holiday neither
raises an alarm nor teaches the spike detector that its hours are quiet."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from insights.forecast import SpendForecaster
from insights.spikes import WEEKDAY_HOURS, SpikeDetector
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


def test_a_quiet_holiday_is_a_day_off_to_the_hourly_detector() -> None:
    """Placed as the runner places it, Thanksgiving's hours are judged and learnt as a day off's: its quiet
    raises nothing and does not lower the weekdays' norm; without the calendar it is learnt as a weekday."""
    from schemas.budgets import OrgConfig
    from schemas.config_records import ConfigState
    from streams.spike_records import local_hours_at, placement

    def cost(day: date, hour: int) -> float:
        busy = 10.0 if 9 <= hour < 18 else 1.0
        return busy * 0.2 if day.weekday() >= 5 or day in HOLIDAYS else busy

    detectors = {}
    for calendar in ("US", ""):
        config = ConfigState()
        config.orgs["acme"] = OrgConfig("acme", holidays=calendar)
        detector = detectors[calendar] = SpikeDetector(seasons=WEEKDAY_HOURS, bucket_s=3_600, warmup=3, ratio=2.2, k=4)
        flagged = []
        day = date(2026, 11, 2)
        while day <= date(2026, 11, 30):
            for hour in range(24):
                at = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
                season, learn = placement(WEEKDAY_HOURS, local_hours_at(config, at)("acme|org/acme"))
                spike = detector.observe(
                    "acme|org/acme", int(at.timestamp()), cost(day, hour), season=season, learn=learn
                )
                flagged.append(spike)
            day += timedelta(days=1)
        assert not any(flagged)  # no quiet day off, holiday or not, raised anything
    kept = detectors["US"].entities["acme|org/acme"].expected(11)
    lowered = detectors[""].entities["acme|org/acme"].expected(11)
    assert kept == pytest.approx(10.0) and lowered < 9.5  # without the calendar, Thanksgiving's quiet was learnt


def test_the_minute_detector_does_not_learn_a_holiday() -> None:
    from streams.spike_records import LocalHour, placement

    assert placement(1, LocalHour(11, True, True)) == (None, False)
    assert placement(1, LocalHour(11, True, False)) == (None, True)  # a weekend is learnt, as before
    assert placement(WEEKDAY_HOURS, LocalHour(11, True, True)) == (35, True)
    assert placement(WEEKDAY_HOURS, LocalHour(11, False, False)) == (11, True)


def test_the_runner_reads_each_orgs_calendar_in_its_zone() -> None:
    from schemas.budgets import OrgConfig
    from schemas.config_records import ConfigState
    from streams.spike_records import LocalHour, local_hours_at, org_holidays

    config = ConfigState()
    config.orgs["acme"] = OrgConfig("acme", timezone="America/Los_Angeles", holidays="US")
    config.orgs["globex"] = OrgConfig("globex")  # no calendar
    # 2026-11-27 02:00 UTC is still Thanksgiving evening in Los Angeles
    local = local_hours_at(config, datetime(2026, 11, 27, 2, tzinfo=UTC))
    assert local("acme|user/ada") == LocalHour(18, True, True)  # 18:00 on Thanksgiving there
    assert local("globex|user/bob") == LocalHour(2, False, False) == local("initech|org/initech")  # a Friday in UTC
    assert local_hours_at(config, datetime(2026, 11, 27, 9, tzinfo=UTC))("acme|org/acme") == LocalHour(1, False, False)
    assert local_hours_at(config, datetime(2026, 11, 28, 20, tzinfo=UTC))("acme|org/acme").day_off  # a Saturday
    assert date(2027, 1, 1) in org_holidays("acme", "US", date(2026, 1, 1), date(2026, 11, 27))  # next year's too
    assert org_holidays("acme", "XX", date(2026, 1, 1), date(2026, 11, 27)) == frozenset()  # logged, not fatal
