"""Budgets: a limit on what one scope may spend in one period.

A budget names its scope (the org itself, or a department, user, feature or
model inside the org), a period cut in the org's time zone, a limit in
nano-USD, a mode (a ``hard`` cap denies requests before they run; a ``soft``
budget only alerts), the alert stages as percentages of the limit, and the
channels each stage (or alert kind) goes to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.allocation_tags import MAX_TAGS, TagRule, split_tag_scope, tag_values
from schemas.cost_allocation import Chargeback
from schemas.errors import SpendstreamError
from schemas.events import ID_PATTERN, NAME_PATTERN

__all__ = [
    "DEFAULT_MIN_ESTIMATE_NANOS",
    "Budget",
    "BudgetError",
    "BudgetMode",
    "Channel",
    "OrgConfig",
    "Period",
    "ScopeKind",
    "period_bounds",
    "period_key",
]

_ID = re.compile(ID_PATTERN)
_NAME = re.compile(NAME_PATTERN)


class BudgetError(SpendstreamError):
    """A budget or org setting that cannot be applied; ``field`` names it."""


class ScopeKind(StrEnum):
    ORG = "org"
    DEPARTMENT = "department"
    USER = "user"
    FEATURE = "feature"
    MODEL = "model"
    PROVIDER = "provider"
    API_KEY = "apikey"
    TAG = "tag"  # one value of a declared allocation tag: scope_id "project=apollo"


class Period(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"  # ISO weeks: Monday 00:00 in the org's time zone
    MONTHLY = "monthly"


class BudgetMode(StrEnum):
    HARD = "hard"
    SOFT = "soft"


class Channel(StrEnum):
    EMAIL = "email"
    SLACK = "slack"
    TEAMS = "teams"
    SMS = "sms"
    PAGERDUTY = "pagerduty"


DEFAULT_MIN_ESTIMATE_NANOS = 1_000
"""The smallest reservation: a request estimated at zero would hold nothing, and a user exactly at
the limit would be admitted."""


@dataclass(frozen=True, slots=True)
class OrgConfig:
    """What spendstream keeps of an org: where its periods are cut, what to do when Redis is down,
    the smallest estimate a reservation holds, whether a model without a price may run where a
    hard cap applies (it cannot be estimated), and whether a budget stage crossed in a period that had
    already ended (a backfill, a late event) is sent, or only recorded as late (the default)."""

    org_id: str
    timezone: str = "UTC"
    on_redis_unavailable: str = "closed"  # closed: deny (the default) | open: allow, counted
    min_estimate_nanos: int = DEFAULT_MIN_ESTIMATE_NANOS
    unpriced_models: str = "deny"  # deny: refused under a hard cap (the default) | allow: reserved at the floor
    chargeback: Chargeback | None = None  # cost centres and the rule for spend no department owns
    notify_closed_periods: bool = False  # send stage alerts of periods that ended before their events arrived
    tags: tuple[TagRule, ...] = ()  # the metadata keys spend is allocated by (schemas.allocation_tags)
    trust_request_tags: bool = False  # whether a request's own metadata may name a capped tag value
    holidays: str = ""  # the holiday calendar, "US" or "US-CA" (schemas.holiday_calendar); "": none

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.org_id):
            raise BudgetError("org_id", f"{self.org_id!r} is not a valid id")
        if self.on_redis_unavailable not in ("closed", "open"):
            raise BudgetError("on_redis_unavailable", "closed or open")
        if self.unpriced_models not in ("deny", "allow"):
            raise BudgetError("unpriced_models", "deny or allow")
        amount = self.min_estimate_nanos
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= 10**15:
            raise BudgetError("min_estimate_nanos", "an int of nano-USD between 0 and 10^15")
        if len(self.tags) > MAX_TAGS:
            raise BudgetError("tags", f"at most {MAX_TAGS} tags")
        by = self.chargeback.by if self.chargeback else "department"
        if by != "department" and self.tag(by) is None:
            raise BudgetError("chargeback.by", f"{by!r} is not one of the org's allocation tags")
        _zone(self.timezone)
        check_holidays_format(self.holidays)

    def tag(self, key: str) -> TagRule | None:
        return next((rule for rule in self.tags if rule.key == key), None)

    def tag_values(self, metadata: Mapping[str, str]) -> dict[str, str] | None:
        """Each declared tag's value for an event (or a request) with this metadata; None with no tags."""
        return tag_values(self.tags, metadata) if self.tags else None

    def settings(self) -> dict[str, str]:
        """The org's settings as the cap client reads them from Redis."""
        return {
            "tz": self.timezone,
            "on_redis_unavailable": self.on_redis_unavailable,
            "min_estimate_nanos": str(self.min_estimate_nanos),
            "unpriced_models": self.unpriced_models,
        }


_HOLIDAYS = re.compile(r"[A-Z]{2}(-[A-Za-z0-9]{1,12})?")


def check_holidays_format(code: str) -> None:
    """A holiday calendar's form: a country (ISO 3166-1 alpha-2) and optionally its region, or empty."""
    if not isinstance(code, str) or (code and not _HOLIDAYS.fullmatch(code)):
        raise BudgetError("holidays", f"{code!r}: a country code ('US') and optionally its region ('US-CA')")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BudgetError("timezone", f"unknown time zone {name!r}") from None


@dataclass(frozen=True, slots=True)
class Budget:
    org_id: str
    scope: ScopeKind
    scope_id: str
    period: Period
    limit_nanos: int
    mode: BudgetMode = BudgetMode.SOFT
    stages: tuple[int, ...] = (50, 80, 100)
    timezone: str = "UTC"
    # stage ("80") or alert kind ("cap_denied", "projected_exceed") -> channel names of the org
    alerts: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.org_id):
            raise BudgetError("org_id", f"{self.org_id!r} is not a valid id")
        pattern = _NAME if self.scope in (ScopeKind.MODEL, ScopeKind.PROVIDER) else _ID
        if self.scope is ScopeKind.TAG:
            if not isinstance(self.scope_id, str) or split_tag_scope(self.scope_id) is None:
                raise BudgetError("scope_id", f"{str(self.scope_id)[:60]!r} is not <tag>=<value> (project=apollo)")
        elif not pattern.fullmatch(self.scope_id):
            raise BudgetError("scope_id", f"{self.scope_id!r} is not a valid {self.scope.value} id")
        if self.scope is ScopeKind.ORG and self.scope_id != self.org_id:
            raise BudgetError("scope_id", "an org budget's scope_id must be its org_id")
        if isinstance(self.limit_nanos, bool) or not isinstance(self.limit_nanos, int):
            raise BudgetError("limit_nanos", "must be an int of nano-USD")
        if self.limit_nanos <= 0:
            raise BudgetError("limit_nanos", "must be > 0")
        if not self.stages or any(not isinstance(s, int) or not 0 < s <= 1000 for s in self.stages):
            raise BudgetError("stages", "percentages between 1 and 1000")
        if list(self.stages) != sorted(set(self.stages)):
            raise BudgetError("stages", "must be strictly increasing")
        _zone(self.timezone)

    def thresholds(self) -> tuple[tuple[int, int], ...]:
        """(stage, nano-USD at which it is reached): the exact ceiling of limit x stage / 100."""
        return tuple((stage, -(-self.limit_nanos * stage // 100)) for stage in self.stages)

    @property
    def key(self) -> str:
        """Stable identity within an org: ``department/eng/monthly``."""
        return f"{self.scope.value}/{self.scope_id}/{self.period.value}"

    def crossed_stages(self, before_nanos: int, after_nanos: int) -> tuple[int, ...]:
        """Stages whose threshold lies in (before, after]: each is crossed once."""
        crossed = []
        for stage in self.stages:
            threshold = self.limit_nanos * stage  # compare in percent units, no division
            if before_nanos * 100 < threshold <= after_nanos * 100:
                crossed.append(stage)
        return tuple(crossed)


def period_bounds(at: datetime, period: Period, timezone: str = "UTC") -> tuple[datetime, datetime]:
    """The [start, end) of the period containing ``at``, cut in ``timezone``, returned in UTC."""
    if at.tzinfo is None:
        raise BudgetError("at", "must be tz-aware")
    zone = _zone(timezone)
    local = at.astimezone(zone)
    if period is Period.DAILY:
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=1)).replace(hour=0)
    elif period is Period.WEEKLY:
        day = local.date() - timedelta(days=local.weekday())
        start = datetime(day.year, day.month, day.day, tzinfo=zone)
        nxt = day + timedelta(days=7)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    else:
        start = datetime(local.year, local.month, 1, tzinfo=zone)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end = datetime(year, month, 1, tzinfo=zone)
    # Wall-clock midnights re-read through the zone, so DST days are 23 or 25 hours long.
    start = datetime(start.year, start.month, start.day, tzinfo=zone)
    end = datetime(end.year, end.month, end.day, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def period_key(at: datetime, period: Period, timezone: str = "UTC") -> str:
    """A short label of the period containing ``at``: ``2024-05-17``, ``2024-W20``, ``2024-05``."""
    local = at.astimezone(_zone(timezone))
    if period is Period.DAILY:
        return local.strftime("%Y-%m-%d")
    if period is Period.WEEKLY:
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.strftime("%Y-%m")
