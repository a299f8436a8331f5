"""The filters of Cost analysis, Usage patterns and custom reports (pure): from query parameters to a checked
:class:`CostFilter`, with errors that name the parameter.

Dates are the org's calendar days: ``from`` is the first day shown, ``to`` the last (both included);
the default is the current month to date.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from schemas.errors import SpendstreamError
from schemas.params import FIRST_DAY, LAST_DAY
from sinks.queries import Narrow

__all__ = ["GRANULARITIES", "GROUPS", "MAX_DAYS", "CostFilter", "FilterError", "parse_filter", "parse_month"]

GROUPS = {
    "provider": "provider",
    "model": "model",
    "feature": "feature",
    "department": "department_id",
    "user": "user_id",
}
GRANULARITIES = ("day", "week", "month")
MAX_DAYS = 400
_VALUE = re.compile(r"[A-Za-z0-9._:/@+-]{1,200}")


class FilterError(SpendstreamError):
    """A filter parameter that cannot be used (HTTP 400); ``field`` names it."""


@dataclass(frozen=True, slots=True)
class CostFilter:
    first: date
    last: date
    timezone: str
    granularity: str = "day"
    group: str = "model"
    department: str = "*"
    user: str = "*"
    model: str = "*"
    feature: str = "*"
    provider: str = "*"

    @property
    def start(self) -> datetime:
        """The first day's midnight in the org's zone, in UTC."""
        zone = ZoneInfo(self.timezone)
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The midnight after the last day, in UTC (exclusive)."""
        after = self.last + timedelta(days=1)
        return datetime(after.year, after.month, after.day, tzinfo=ZoneInfo(self.timezone)).astimezone(UTC)

    @property
    def column(self) -> str:
        return GROUPS[self.group]

    def narrow(self) -> Narrow:
        return Narrow(self.department, self.user, self.model, self.feature, self.provider)

    def params(self, **changes: str) -> str:
        """The query string of this filter (with ``changes``): links, drill-downs and CSV downloads."""
        values = {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "granularity": self.granularity,
            "group": self.group,
            **{k: getattr(self, k) for k in ("department", "user", "model", "feature", "provider")},
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v != "*"})

    def drill(self, value: str) -> CostFilter:
        """One level down: a department's users, a user's models; otherwise narrowed to the value."""
        if self.group == "department":
            return replace(self, department=value, group="user")
        if self.group == "user":
            return replace(self, user=value, group="model")
        changes: dict[str, Any] = {self.group: value}
        return replace(self, **changes)


def _date(text: str, field: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise FilterError(field, f"{text[:40]!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise FilterError(field, f"{text} is outside {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}")
    return day


def parse_filter(params: Mapping[str, str], timezone: str, today: date) -> CostFilter:
    """A checked filter; the defaults: this month to date, by day, grouped by model."""
    first = _date(params["from"], "from") if params.get("from") else today.replace(day=1)
    last = _date(params["to"], "to") if params.get("to") else today
    if last < first:
        raise FilterError("to", "must not be before from")
    if (last - first).days + 1 > MAX_DAYS:
        raise FilterError("from", f"at most {MAX_DAYS} days at once")
    granularity = params.get("granularity") or "day"
    if granularity not in GRANULARITIES:
        raise FilterError("granularity", "day, week or month")
    group = params.get("group") or "model"
    if group not in GROUPS:
        raise FilterError("group", f"one of {', '.join(GROUPS)}")
    narrowed = {}
    for name in ("department", "user", "model", "feature", "provider"):
        value = params.get(name) or "*"
        if value != "*" and not _VALUE.fullmatch(value):
            raise FilterError(name, f"{value!r} is not a valid {name}")
        narrowed[name] = value
    return CostFilter(first, last, timezone, granularity, group, **narrowed)


def parse_month(value: str | None, today: date) -> date:
    """``YYYY-MM`` as its first day; none: the month before ``today``'s. A month not begun is refused."""
    if not value:
        return date.fromordinal(today.replace(day=1).toordinal() - 1).replace(day=1)
    try:
        month = datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise FilterError("month", f"{value[:40]!r} is not YYYY-MM") from None
    if month < FIRST_DAY:
        raise FilterError("month", f"{value} is before {FIRST_DAY:%Y-%m}")
    if month > today:
        raise FilterError("month", f"{value} has not begun")
    return month
