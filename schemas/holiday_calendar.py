"""An org's holiday calendar: a country and, optionally, a region of it (``US``, ``US-CA``, ``DE-BY``), as
the ``holidays`` package knows them. Forecasts treat its days as they treat a weekend's; the spike detector
does not learn a holiday's quiet as normal.

The format is checked wherever an org is read (``schemas.budgets.check_holidays_format``); whether the package knows the
country and region is checked where budgets are applied and where the worker reads them
(:func:`check_calendar`), so that only the server's extra needs the package."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import lru_cache

from schemas.budgets import BudgetError, check_holidays_format

__all__ = ["check_calendar", "holiday_dates"]


def check_calendar(code: str) -> None:
    """Raises BudgetError naming ``holidays`` unless the package has this country and region."""
    check_holidays_format(code)
    if code:
        holiday_dates(code, (date.today().year,))


@lru_cache(maxsize=256)
def _dates(code: str, years: tuple[int, ...]) -> frozenset[date]:
    import holidays  # noqa: PLC0415 - the server's extra: only where calendars are used

    country, _, region = code.partition("-")
    try:
        calendar = holidays.country_holidays(country, subdiv=region or None, years=list(years))
    except NotImplementedError as exc:
        raise BudgetError("holidays", f"{code!r}: {exc}") from None
    return frozenset(calendar)


def holiday_dates(code: str, years: Iterable[int]) -> frozenset[date]:
    """The calendar's holidays in these years (none for an empty code)."""
    return _dates(code, tuple(sorted(set(years)))) if code else frozenset()
