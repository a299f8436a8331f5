"""Saved report templates (pure): what to generate (a kind, its filters), in which formats, for whom, and
when (a cron expression read in the org's time zone). They live on ``config.v1`` as
``report/<org>/<name>`` records, beside the budgets, so every process reads the same ones.

A month kind (``schemas.report_kinds``) covers the last complete month when it runs; a custom template covers
the ``days`` up to yesterday. A paused template keeps its schedule but is not run on it; a run asked for
(``run_requested_at``, "Run now" in the console) is run once whether or not it is paused."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from schemas.allocation_tags import TAG_KEY_PATTERN
from schemas.errors import SpendstreamError
from schemas.report_kinds import KINDS, Format

__all__ = ["NARROWING", "ReportTemplate", "TemplateError", "parse_template", "template_record_body"]

NARROWING = ("department", "user", "model", "feature", "provider")  # what a custom report may be narrowed to
FILTERS = ("group", "granularity", *NARROWING)
_FIELDS = ("kind", "formats", "recipients", "schedule", "timezone", "paused", "days", "filters")  # what a user sets
MAX_RECIPIENTS = 20
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_LABEL = re.compile("tag:" + TAG_KEY_PATTERN.removeprefix("^"))
_EMAIL = re.compile(r'^[^@\s<>,;"]{1,64}@[^@\s<>,;"]{1,189}\.[^@\s<>,;"]{1,63}\Z')  # one address, no list


def _filter_name(name: object) -> bool:
    """A filter a template may keep: the custom report's, or one label (api_key, tag:<declared tag>), which
    the report checks against the org's declared tags when it runs."""
    return isinstance(name, str) and (name in FILTERS or name == "api_key" or bool(_LABEL.fullmatch(name)))


class TemplateError(SpendstreamError):
    """A report template that cannot be saved; ``field`` names what is wrong."""


@dataclass(frozen=True, slots=True)
class ReportTemplate:
    org_id: str
    name: str
    kind: str
    formats: tuple[str, ...] = ("pdf",)
    recipients: tuple[str, ...] = ()
    schedule: str | None = None  # cron, in the org's time zone
    days: int = 30  # custom: the days up to yesterday
    filters: tuple[tuple[str, str], ...] = field(default=())  # custom: group, granularity, narrowing
    saved_at: datetime | None = None  # a schedule's first run is its first time after this
    timezone: str = ""  # the schedule's zone; empty: the org's
    paused: bool = False  # not run on its schedule (a run asked for still runs)
    run_requested_at: datetime | None = None  # "Run now": one run for this time

    def last_due(self, now: datetime, done: datetime | None = None) -> datetime | None:
        """The latest scheduled time at or before ``now`` (tz-aware, in the org's zone) that is after both
        ``saved_at`` and ``done`` (the last time already run): the run that is due, or None. Several missed
        times give one run, of the latest: a missed run is caught up once."""
        if self.schedule is None:
            return None
        latest: datetime = croniter(self.schedule, now + timedelta(microseconds=1)).get_prev(datetime)
        floors = [t for t in (self.saved_at, done) if t is not None]
        return latest if all(latest > t for t in floors) else None

    def next_run(self, after: datetime) -> datetime | None:
        """The first scheduled time after ``after`` (tz-aware, in the org's zone); None without a schedule."""
        if self.schedule is None:
            return None
        found: datetime = croniter(self.schedule, after).get_next(datetime)
        return found


def parse_template(org_id: str, name: str, body: Mapping[str, Any]) -> ReportTemplate:
    if not _NAME.fullmatch(name):
        raise TemplateError("name", "lower-case letters, digits, '-' and '_' (at most 63)")
    unknown = set(body) - {*_FIELDS, "saved_at", "run_requested_at"}
    if unknown:
        raise TemplateError(sorted(unknown)[0], "unknown field")
    kind = body.get("kind")
    if kind not in KINDS:
        raise TemplateError("kind", f"one of {', '.join(KINDS)}")
    formats = tuple(body.get("formats") or ("pdf",))
    if not formats or any(f not in {f.value for f in Format} for f in formats):
        raise TemplateError("formats", "pdf, xlsx and/or csv")
    recipients = _recipients(body.get("recipients") or ())
    schedule = body.get("schedule") or None
    if schedule is not None and (not isinstance(schedule, str) or not croniter.is_valid(schedule)):
        raise TemplateError("schedule", f"{schedule!r} is not a cron expression (minute hour day month weekday)")
    days = body.get("days", 30)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 400:
        raise TemplateError("days", "a whole number of days from 1 to 400")
    filters = body.get("filters") or {}
    if not isinstance(filters, Mapping) or any(
        not _filter_name(k) or not isinstance(v, str) for k, v in filters.items()
    ):
        raise TemplateError("filters", f"a mapping of {', '.join(FILTERS)}, api_key or tag:<tag> to values")
    if filters and kind != "custom":
        raise TemplateError("filters", "only a custom report takes filters")
    timezone = body.get("timezone") or ""
    if not isinstance(timezone, str) or (timezone and not _known_zone(timezone)):
        raise TemplateError("timezone", f"{str(timezone)[:60]!r} is not a time zone (Europe/Berlin, UTC)")
    paused = body.get("paused", False)
    if not isinstance(paused, bool):
        raise TemplateError("paused", "true or false")
    sorted_filters = tuple(sorted(filters.items()))
    return ReportTemplate(
        org_id, name, kind, formats, recipients, schedule, days, sorted_filters, _instant(body, "saved_at"),
        timezone, paused, _instant(body, "run_requested_at"),
    )  # fmt: skip


def _recipients(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise TemplateError("recipients", "a list of email addresses")
    if len(value) > MAX_RECIPIENTS:
        raise TemplateError("recipients", f"at most {MAX_RECIPIENTS} addresses")
    for i, address in enumerate(value):
        if not isinstance(address, str) or not _EMAIL.fullmatch(address):
            raise TemplateError(f"recipients[{i}]", f"{str(address)[:80]!r} is not an email address")
    return tuple(value)


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return len(name) <= 64


def _instant(body: Mapping[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    try:
        found = None if value is None else datetime.fromisoformat(str(value))
    except ValueError:
        raise TemplateError(name, f"{str(value)[:40]!r} is not an ISO 8601 time") from None
    if found is not None and found.tzinfo is None:
        raise TemplateError(name, "needs a UTC offset")
    return found


def template_record_body(template: ReportTemplate) -> bytes:
    body: dict[str, Any] = {
        "kind": template.kind,
        "formats": list(template.formats),
        "recipients": list(template.recipients),
        "days": template.days,
        "filters": dict(template.filters),
    }
    if template.schedule:
        body["schedule"] = template.schedule
    if template.timezone:
        body["timezone"] = template.timezone
    if template.paused:
        body["paused"] = True
    if template.saved_at is not None:
        body["saved_at"] = template.saved_at.isoformat()
    if template.run_requested_at is not None:
        body["run_requested_at"] = template.run_requested_at.isoformat()
    return json.dumps(body).encode()
