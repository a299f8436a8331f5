"""The filters of Cost analysis, Usage patterns and custom reports (pure): from query parameters to a checked
:class:`CostFilter`, with errors that name the parameter.

Dates are the org's calendar days: ``from`` is the first day shown, ``to`` the last (both included);
the default is the current month to date.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from schemas.allocation_tags import UNTAGGED
from schemas.errors import SpendstreamError
from schemas.params import FIRST_DAY, LAST_DAY
from sinks.label_queries import API_KEY, TAG_PREFIX, spend_by_label
from sinks.queries import Narrow, Query, spend_by

__all__ = ["GRANULARITIES", "GROUPS", "MAX_DAYS", "CostFilter", "FilterError", "parse_filter", "parse_month"]

GROUPS = {
    "provider": "provider",
    "model": "model",
    "feature": "feature",
    "department": "department_id",
    "user": "user_id",
    API_KEY: API_KEY,  # a label: the label rollup (sinks.label_queries), as is tag:<key> for each declared tag
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
    label: str = ""  # api_key or tag:<key>: narrowed to one key or one value of a declared tag
    label_value: str = ""

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
        """The column or label (``api_key``, ``tag:<key>``) grouped by."""
        return GROUPS.get(self.group, self.group)

    @property
    def by_label(self) -> bool:
        return self.group == API_KEY or self.group.startswith(TAG_PREFIX)

    def narrow(self) -> Narrow:
        return Narrow(self.department, self.user, self.model, self.feature, self.provider, self.label, self.label_value)

    def spend(self, database: str, org_id: str) -> Query:
        """Spend per value of the group, with these filters (the label rollup for a label)."""
        if self.by_label:
            return spend_by_label(database, self.column, org_id, self.start, self.end, self.narrow())
        return spend_by(database, self.column, org_id, self.start, self.end, self.narrow())

    def params(self, **changes: str) -> str:
        """The query string of this filter (with ``changes``): links, drill-downs and CSV downloads."""
        values = {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "granularity": self.granularity,
            "group": self.group,
            **{k: getattr(self, k) for k in ("department", "user", "model", "feature", "provider")},
        }
        if self.label:
            values[self.label] = self.label_value
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v != "*"})

    def drill(self, value: str) -> CostFilter:
        """One level down: a department's users, a user's models; otherwise narrowed to the value."""
        if self.group == "department":
            return replace(self, department=value, group="user")
        if self.group == "user":
            return replace(self, user=value, group="model")
        if self.by_label:
            return replace(self, label=self.group, label_value=value, group="model")
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


def _label_filter(params: Mapping[str, str], tags: Sequence[str]) -> tuple[str, str]:
    """The one API key or tag value (``api_key=k1``, ``tag:project=apollo``) narrowed to, if any."""
    asked = [name for name in params if (name == API_KEY or name.startswith(TAG_PREFIX)) and params[name]]
    if len(asked) > 1:
        raise FilterError(asked[1], "narrow to one API key or one tag value at a time")
    if not asked:
        return "", ""
    name, value = asked[0], params[asked[0]]
    if name != API_KEY and name.removeprefix(TAG_PREFIX) not in tags:
        raise FilterError(name, _undeclared(name, tags))
    if value != UNTAGGED and not _VALUE.fullmatch(value):
        raise FilterError(name, f"{value[:40]!r} is not a valid value")
    return name, value


def _undeclared(label: str, tags: Sequence[str]) -> str:
    declared = ", ".join(tags) if tags else "none"
    return f"{label.removeprefix(TAG_PREFIX)[:40]!r} is not a declared tag of the org (declared: {declared})"


def parse_filter(params: Mapping[str, str], timezone: str, today: date, tags: Sequence[str] = ()) -> CostFilter:
    """A checked filter; the defaults: this month to date, by day, grouped by model. ``tags``: the org's
    declared allocation tags, which ``group=tag:<key>`` and ``tag:<key>=<value>`` may name."""
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
    if group.startswith(TAG_PREFIX):
        if group.removeprefix(TAG_PREFIX) not in tags:
            raise FilterError("group", _undeclared(group, tags))
    elif group not in GROUPS:
        raise FilterError("group", f"one of {', '.join(GROUPS)}, or tag:<key> of a declared tag")
    narrowed = {}
    for name in ("department", "user", "model", "feature", "provider"):
        value = params.get(name) or "*"
        if value != "*" and not _VALUE.fullmatch(value):
            raise FilterError(name, f"{value!r} is not a valid {name}")
        narrowed[name] = value
    label, label_value = _label_filter(params, tags)
    return CostFilter(first, last, timezone, granularity, group, **narrowed, label=label, label_value=label_value)


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
