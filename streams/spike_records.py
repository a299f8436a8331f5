"""What the insights runner makes of what it reads, apart from I/O: a closed bucket's entities with their parts
in every dimension, a spike's anomalies row and alert naming what drove it, and an org's holidays."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from insights.spikes import WEEKDAY_HOURS, Spike
from schemas.alerts import DRIVER_KEYS
from schemas.alerts import Spike as SpikeAlert
from schemas.budgets import BudgetError
from schemas.config_records import ConfigState
from schemas.holiday_calendar import holiday_dates
from schemas.money import format_usd
from sinks.tables import AnomalyRow

__all__ = ["LocalHour", "anomaly_row", "entities_of", "local_hours_at", "org_holidays", "placement", "spike_alert"]

log = logging.getLogger("spendstream.insights")

# the dimensions a spike's driver is named in, in the order a tie is settled: who, then what, then where
_DIMENSIONS = ("user", "model", "feature", "tag", "department")
_DRIVER_KEYS = {key.removesuffix("_id"): key for key in DRIVER_KEYS}  # a dimension's key in an alert's drivers


def entities_of(rows: Iterable[tuple[Any, ...]], kinds: frozenset[str]) -> dict[str, tuple[float, dict[str, float]]]:
    """Per ``<org>|<kind>/<id>``: the bucket's cost and its parts in every other dimension (``user/ada``,
    ``model/gpt-4o``, ``feature/chat``, ``tag/project=apollo``, ``department/eng``; a user's parts have no
    department). Each dimension's parts add up to the cost (each allocation tag's too: an event carries
    every declared tag, with its value or the missing one), so the largest part of all names the dimension
    where the bucket is most concentrated: the spike's driver. ``rows``: org, department, user, model,
    feature, tag keys, tag values, cost."""
    out: dict[str, list[Any]] = {}
    for org, department, user, model, feature, tag_keys, tag_values, cost in rows:
        value = float(cost)
        dims = {"user": user, "model": model, "feature": feature, "department": department}
        tags = [f"tag/{key}={tag}" for key, tag in zip(tag_keys, tag_values, strict=False) if tag]
        for kind, ident in (("org", org), *dims.items()):
            if not ident or kind not in kinds:
                continue
            entry = out.setdefault(f"{org}|{kind}/{ident}", [0.0, defaultdict(float)])
            entry[0] += value
            for dim in _DIMENSIONS:
                if dim == "tag":
                    for part in tags:
                        entry[1][part] += value
                # a user's department holds all of the user's spend: it explains nothing
                elif dim != kind and dims[dim] and not (kind == "user" and dim == "department"):
                    entry[1][f"{dim}/{dims[dim]}"] += value
    return {key: (cost, dict(parts)) for key, (cost, parts) in out.items()}


def _reason(spike: Spike) -> str | None:
    """``user ada is 82% of the bucket ($1.20)``."""
    if not spike.driver:
        return None
    dim, ident = spike.driver.split("/", 1)
    cost = format_usd(round(spike.observed * spike.driver_share))
    return f"{dim} {ident} is {spike.driver_share:.0%} of the bucket ({cost})"


def _driver(spike: Spike) -> list[dict[str, Any]]:
    """The alert's driver: the dimension's key (``user_id``, ``model``...) with its cost and share."""
    if not spike.driver:
        return []
    dim, ident = spike.driver.split("/", 1)
    cost = round(spike.observed * spike.driver_share)
    return [{_DRIVER_KEYS[dim]: ident, "cost_nanos": cost, "share": round(spike.driver_share, 3)}]


def anomaly_row(org: str, spike: Spike, size: int) -> AnomalyRow:
    return AnomalyRow(
        datetime.fromtimestamp(spike.bucket, UTC),
        size,
        org,
        spike.entity.split("|", 1)[1],
        int(spike.observed),
        int(spike.expected),
        round(spike.ratio, 3),
        round(spike.score, 3),
        spike.driver,
        round(spike.driver_share, 4),
    )


def spike_alert(org: str, spike: Spike, size: int) -> SpikeAlert:
    entity = spike.entity.split("|", 1)[1]
    at = datetime.fromtimestamp(spike.bucket, UTC)
    return SpikeAlert(
        org_id=org,
        scope=entity,
        period=f"{size}s",
        period_key=at.isoformat(),
        observed_nanos=round(spike.observed),
        expected_nanos=round(spike.expected),
        drivers=_driver(spike),
        detected_at=datetime.now(UTC).isoformat(),
        reason=_reason(spike),
    )


def org_holidays(org: str, calendar: str, first: date, today: date) -> frozenset[date]:
    """An org's holidays from ``first`` to the end of next year (none when it set no calendar, or one this
    version of the holidays package does not know: logged, the insights go on)."""
    try:
        return holiday_dates(calendar, range(first.year, today.year + 2))
    except BudgetError as exc:
        log.warning("org %s: holiday calendar ignored: %s", org, exc)
        return frozenset()


@dataclass(frozen=True, slots=True)
class LocalHour:
    """An instant as an org sees it: the hour of day in its zone, and whether that day is off."""

    hour: int
    day_off: bool  # a Saturday, a Sunday or one of the org's holidays
    holiday: bool


def local_hours_at(config: ConfigState, at: datetime) -> Callable[[str], LocalHour]:
    """``at`` in the zone and calendar of the org of an entity key (``<org>|<kind>/<id>``); UTC and no
    holidays for an org without settings."""
    cache: dict[str, LocalHour] = {}

    def local(key: str) -> LocalHour:
        org = key.split("|", 1)[0]
        if org not in cache:
            settings = config.orgs.get(org)
            there = at.astimezone(ZoneInfo(settings.timezone)) if settings else at.astimezone(UTC)
            calendar = settings.holidays if settings else ""
            holiday = bool(calendar) and there.date() in org_holidays(org, calendar, there.date(), there.date())
            cache[org] = LocalHour(there.hour, holiday or there.weekday() >= 5, holiday)
        return cache[org]

    return local


def placement(seasons: int, local: LocalHour) -> tuple[int | None, bool]:
    """Where a bucket goes in a detector with ``seasons``, as (season, learn). An hourly detector by weekday
    hours (:data:`~insights.spikes.WEEKDAY_HOURS`) takes the org's local hour, a day off's hours apart, and
    learns a holiday as the day off it is; any other detector places the bucket itself and does not learn a
    holiday (its quiet is not the norm)."""
    if seasons == WEEKDAY_HOURS:
        return local.hour + (24 if local.day_off else 0), True
    return None, not local.holiday
