"""Alerts: what happened, as one record of ``alerts.v1``. Pure: no I/O.

An alert is one of a tagged union (``kind`` on the wire): :class:`BudgetStage` (a stage of a
budget crossed), :class:`CapDenied` (the first hard-cap denial of a budget in its period),
:class:`ProjectedExceed` (a forecast says a budget will be exceeded), :class:`Spike`,
:class:`Unpriced` (spend on a model without a price), :class:`UnconfiguredOrg` (spend of an org no one
configured, once a day) and :class:`Resolved` (an earlier alert's condition cleared). Its
``dedup_key`` is computed in one place, :func:`dedup_key`, from what the alert is about (org, scope,
period, kind, stage), so whoever emits it twice, delivery still happens once per recipient.

A :class:`Denial` is what the cap client queues for the worker when a budget denies for the first
time in a period; the worker turns it into a :class:`CapDenied`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from schemas.money import format_usd

__all__ = [
    "DRIVER_KEYS",
    "Alert",
    "AlertKind",
    "BudgetStage",
    "CapDenied",
    "Denial",
    "ProjectedExceed",
    "Resolved",
    "Severity",
    "Spike",
    "UnconfiguredOrg",
    "Unpriced",
    "decode_alert",
    "decode_denial",
    "dedup_key",
    "encode_alert",
    "encode_denial",
    "severity_of",
    "spike_comparison",
    "unconfigured_org_alert",
    "unpriced_alert",
]


class AlertKind(StrEnum):
    BUDGET_STAGE = "budget_stage"
    CAP_DENIED = "cap_denied"
    PROJECTED_EXCEED = "projected_exceed"
    SPIKE = "spike"
    UNPRICED = "unpriced"  # spend on a model the catalogue has no price for (counted at zero or a fallback)
    UNCONFIGURED_ORG = "unconfigured_org"  # spend of an org with no entry in config.v1 (no budget applies)
    RESOLVED = "resolved"


class Severity(StrEnum):
    """PagerDuty's four severities, used by every channel."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


DRIVER_KEYS = ("department_id", "user_id", "model", "feature", "tag")
"""What a cost driver of an alert (``drivers``) may name, in the order a message reads them (``tag``: an
allocation tag's ``key=value``); with its ``cost_nanos`` and ``share``."""


class _Alert(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="kind"):
    org_id: str
    scope: str  # "<kind>/<id>": "department/eng", "user/ada", "model/gpt-4o"
    detected_at: str  # ISO 8601, UTC
    period: str | None = None  # daily | weekly | monthly (a spike: its bucket, "60s")
    period_key: str | None = None  # which day, week, month (a spike: its bucket's start)
    drivers: list[dict[str, Any]] = msgspec.field(default_factory=list)  # top cost drivers, filled on delivery
    channels: list[str] | None = None  # when set, these channels and no routing
    reason: str | None = None

    @property
    def kind(self) -> str:
        return str(self.__struct_config__.tag)

    @property
    def dedup_key(self) -> str:
        return dedup_key(self)  # type: ignore[arg-type]  # every concrete alert is an Alert


class _BudgetAlert(_Alert, kw_only=True, omit_defaults=True):
    limit_nanos: int | None = None
    spent_nanos: int | None = None


class BudgetStage(_BudgetAlert, tag="budget_stage", kw_only=True, omit_defaults=True):
    stage: int
    event_id: str | None = None
    occurred_at: str | None = None  # the event that crossed it


class CapDenied(_BudgetAlert, tag="cap_denied", kw_only=True, omit_defaults=True):
    reserved_nanos: int | None = None
    request_id: str | None = None
    estimate_nanos: int | None = None


class ProjectedExceed(_BudgetAlert, tag="projected_exceed", kw_only=True, omit_defaults=True):
    projected_p10_nanos: int
    projected_p50_nanos: int
    projected_p90_nanos: int
    probability: float
    runout_date: str | None = None


class Spike(_Alert, tag="spike", kw_only=True, omit_defaults=True):
    observed_nanos: int  # the bucket's cost
    expected_nanos: int  # what the entity's recent buckets led to expect


class Unpriced(_Alert, tag="unpriced", kw_only=True, omit_defaults=True):
    provider: str
    model: str
    event_id: str | None = None
    occurred_at: str | None = None


class UnconfiguredOrg(_Alert, tag="unconfigured_org", kw_only=True, omit_defaults=True):
    event_id: str | None = None  # the first event of the day that was counted


class Resolved(_Alert, tag="resolved", kw_only=True, omit_defaults=True):
    resolves: str  # the dedup_key of the alert it clears


Alert = BudgetStage | CapDenied | ProjectedExceed | Spike | Unpriced | UnconfiguredOrg | Resolved


def dedup_key(alert: Alert) -> str:
    """What makes two alerts one: the org, what it is about, its period, its kind and stage. The one place
    this is written; delivery ledgers, PagerDuty incidents and email Message-IDs all derive from it."""
    if isinstance(alert, Resolved):
        return f"{alert.resolves}|resolved"
    scope = f"model/{alert.provider}/{alert.model}" if isinstance(alert, Unpriced) else alert.scope
    stage = alert.stage if isinstance(alert, BudgetStage) else 0
    return f"{alert.org_id}|{scope}|{alert.period or '-'}|{alert.period_key or '-'}|{alert.kind}|{stage}"


def unpriced_alert(
    org_id: str, provider: str, model: str, source: str, month: str, event_id: str, occurred_at: datetime
) -> Unpriced:
    """Spend on a model without a catalogue price: once per org, model and month."""
    how = {"unpriced": "counted at zero", "fallback": "rated with the fallback model's price"}.get(source, source)
    return Unpriced(
        org_id=org_id,
        scope=f"model/{model}",
        provider=provider,
        model=model,
        period="monthly",
        period_key=month,
        event_id=event_id,
        occurred_at=occurred_at.isoformat(),
        detected_at=datetime.now(occurred_at.tzinfo).isoformat(),
        reason=f"{provider}/{model} has no price in the catalogue: its requests are {how}",
    )


NEW_SPEND_FLOOR_NANOS = 10_000_000  # $0.01: an expected cost below it is no baseline to take a ratio of
NEW_SPEND_RATIO = 100  # nor is one that the bucket's cost is more than 100 times


def spike_comparison(observed_nanos: int, expected_nanos: int) -> str:
    """How a spike compares with what was expected, as every page and message says it: a ratio, or, where
    next to nothing was expected, "new spend" with the amount (not "32790.5x" or "741.7x")."""
    if expected_nanos < NEW_SPEND_FLOOR_NANOS:
        return f"new spend: {format_usd(observed_nanos)} where under $0.01 was expected"
    if observed_nanos > NEW_SPEND_RATIO * expected_nanos:
        return f"new spend: {format_usd(observed_nanos)} where {format_usd(expected_nanos)} was expected"
    ratio = observed_nanos / expected_nanos
    return f"{format_usd(observed_nanos)} against {format_usd(expected_nanos)} expected ({ratio:.1f}x)"


def unconfigured_org_alert(org_id: str, day: str, event_id: str, now: datetime) -> UnconfiguredOrg:
    """Spend of an org with no entry in config.v1: admitted and counted, no budget applies; once a day."""
    return UnconfiguredOrg(
        org_id=org_id,
        scope=f"org/{org_id}",
        period="daily",
        period_key=day,
        event_id=event_id,
        detected_at=now.isoformat(),
        reason=f"org {org_id} has no budgets or settings in config.v1: its requests are admitted and counted, "
        "and no cap applies until it is configured (or the operator sets unknown_orgs: deny)",
    )


class Denial(msgspec.Struct, kw_only=True):
    """The first denial of a budget in its period, queued by the cap client for the worker."""

    org_id: str
    scope: str  # "<kind>/<id>"
    period: str
    period_key: str
    limit_nanos: int
    spent_nanos: int
    reserved_nanos: int
    request_id: str
    estimate_nanos: int
    detected_at: str

    def alert(self) -> CapDenied:
        return CapDenied(
            org_id=self.org_id,
            scope=self.scope.removesuffix("/" + self.period),  # an older client queued scope/period
            period=self.period,
            period_key=self.period_key,
            limit_nanos=self.limit_nanos,
            spent_nanos=self.spent_nanos,
            reserved_nanos=self.reserved_nanos,
            request_id=self.request_id,
            estimate_nanos=self.estimate_nanos,
            detected_at=self.detected_at,
            reason=f"request {self.request_id} needing {self.estimate_nanos} nano-USD was denied",
        )


_ENCODER = msgspec.json.Encoder()
_DECODER: msgspec.json.Decoder[Alert] = msgspec.json.Decoder(Alert)
_DENIALS = msgspec.json.Decoder(Denial)


def encode_alert(alert: Alert) -> bytes:
    return _ENCODER.encode(alert)


def decode_alert(data: bytes) -> Alert:
    """Raises ValueError naming the field for a record that is not an alert."""
    try:
        return _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise ValueError(f"alert: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"alert: not JSON ({exc})") from None


def encode_denial(denial: Denial) -> bytes:
    return _ENCODER.encode(denial)


def decode_denial(data: bytes | str) -> Denial:
    try:
        return _DENIALS.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"denial: {exc}") from None


def severity_of(alert: Alert) -> Severity:
    if isinstance(alert, CapDenied):
        return Severity.CRITICAL
    if isinstance(alert, BudgetStage):
        return Severity.CRITICAL if alert.stage >= 100 else Severity.WARNING if alert.stage >= 80 else Severity.INFO
    if isinstance(alert, ProjectedExceed | Spike | Unpriced | UnconfiguredOrg):
        return Severity.WARNING
    return Severity.INFO
