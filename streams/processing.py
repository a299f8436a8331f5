"""Decode and rate a batch of raw usage messages: pure, no I/O.

Each message either becomes a :class:`Rated` event or a :class:`DeadLetter`
carrying its original bytes (up to :data:`DLQ_PAYLOAD_BYTES`: a larger record is
dead-lettered by reference, its size and source kept), the reason, the field and
its source offset. Bounds checked here, beyond the event's own schema: the
record's size, the cost (an event rated above one million USD is a pricing
error, such as a per-million price imported as per-token), and how far
``occurred_at`` lies in the future or the past of the worker's clock. Also what a
budget stage crossing of a rated event becomes on ``alerts.v1`` (:func:`alert_record`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from enforcement.decision import StageCrossing
from schemas.alerts import BudgetStage, encode_alert
from schemas.budgets import OrgConfig
from schemas.events import MAX_COST_NANOS, EventError, UsageEvent, decode_event
from schemas.money import format_usd
from schemas.pricing import CostSplit, PriceCatalogue, UnpricedModelError, rate

__all__ = [
    "DLQ_PAYLOAD_BYTES",
    "Bounds",
    "DeadLetter",
    "Message",
    "Rated",
    "alert_record",
    "conflict_letter",
    "process_batch",
]

DLQ_PAYLOAD_BYTES = 16 * 1024  # a dead letter carries at most this much of the original record


@dataclass(frozen=True, slots=True)
class Bounds:
    """What the stream accepts beyond the schema."""

    max_event_bytes: int = 64 * 1024
    max_future: timedelta = timedelta(hours=1)
    max_age: timedelta = timedelta(days=400)


@dataclass(frozen=True, slots=True)
class Message:
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class Rated:
    event: UsageEvent
    cost_nanos: int
    price_source: str
    partition: int
    offset: int
    timestamp_ms: int
    list_nanos: int | None = None  # before the org's discount
    split: CostSplit | None = None  # by token type, when the catalogue priced it
    tags: dict[str, str] | None = None  # each declared tag's value: what the row stores and the caps count


@dataclass(frozen=True, slots=True)
class DeadLetter:
    original: bytes
    field: str
    reason: str
    partition: int
    offset: int

    @property
    def payload(self) -> bytes:
        """The original record, or its first :data:`DLQ_PAYLOAD_BYTES` when it is larger."""
        return self.original[:DLQ_PAYLOAD_BYTES]

    def headers(self, topic: str) -> list[tuple[str, bytes]]:
        headers = [
            ("spendstream-reason", self.reason[:1024].encode()),
            ("spendstream-field", self.field[:256].encode()),
            ("spendstream-source", f"{topic}:{self.partition}:{self.offset}".encode()),
            ("spendstream-original-bytes", str(len(self.original)).encode()),
        ]
        if len(self.original) > DLQ_PAYLOAD_BYTES:
            headers.append(("spendstream-truncated", b"1"))
        return headers


def _refusal(message: Message, value: bytes, bounds: Bounds, now: datetime) -> tuple[str, str] | UsageEvent:
    """The decoded event, or (field, reason) why it is refused."""
    if len(value) > bounds.max_event_bytes:
        return "$", f"the record is {len(value)} bytes; a usage event may have at most {bounds.max_event_bytes}"
    decoded = decode_event(value)
    if isinstance(decoded, EventError):
        return decoded.field, decoded.reason
    if decoded.occurred_at > now + bounds.max_future:
        return (
            "$.occurred_at",
            f"{decoded.occurred_at.isoformat()} is more than {bounds.max_future} ahead of the worker",
        )
    if decoded.occurred_at < now - bounds.max_age:
        return "$.occurred_at", f"{decoded.occurred_at.isoformat()} is more than {bounds.max_age.days} days old"
    return decoded


def process_batch(
    messages: Sequence[Message],
    catalogue: PriceCatalogue,
    now: datetime,
    bounds: Bounds = Bounds(),
    orgs: Mapping[str, OrgConfig] | None = None,
) -> tuple[list[Rated], list[DeadLetter]]:
    """Decode and rate each message; ``orgs``: the declared allocation tags, whose values are read once here
    so that the stored row and the caps' settle agree on them."""
    orgs = orgs or {}
    rated: list[Rated] = []
    dead: list[DeadLetter] = []
    for message in messages:
        if message.value is None:
            dead.append(
                DeadLetter(b"", "$", "empty message (a tombstone has no event)", message.partition, message.offset)
            )
            continue
        decoded = _refusal(message, message.value, bounds, now)
        if isinstance(decoded, tuple):
            dead.append(DeadLetter(message.value, decoded[0], decoded[1], message.partition, message.offset))
            continue
        try:
            rating = rate(decoded, catalogue)
        except UnpricedModelError as exc:
            dead.append(DeadLetter(message.value, "$.model", str(exc), message.partition, message.offset))
            continue
        if rating.cost_nanos > MAX_COST_NANOS:
            cost, most = format_usd(rating.cost_nanos), format_usd(MAX_COST_NANOS)
            reason = (
                f"rated at {cost} ({rating.source.value}), above the {most} one request may cost: "
                "check the price's unit (per token or per million tokens)"
            )
            dead.append(DeadLetter(message.value, "$.cost", reason, message.partition, message.offset))
            continue
        rated.append(
            Rated(
                decoded,
                rating.cost_nanos,
                rating.source.value,
                message.partition,
                message.offset,
                message.timestamp_ms,
                rating.list_nanos,
                rating.split,
                _tags(orgs.get(decoded.org_id), decoded),
            )
        )
    return rated, dead


def _tags(org: OrgConfig | None, event: UsageEvent) -> dict[str, str] | None:
    return org.tag_values(event.metadata) if org is not None else None


def conflict_letter(rated: Rated, first: str) -> DeadLetter:
    """A copy of an event applied before, whose content differs: never charged, dead-lettered naming where
    the first copy was read (``<partition>:<offset>``). The record is the event as decoded, re-encoded."""
    where = f"partition {first.replace(':', ' offset ', 1)}" if first != "direct" else "a direct settle"
    reason = (
        f"conflicting duplicate: event_id {rated.event.event_id} was first applied from {where} with other "
        "content (time, cost, tokens, user or another field); this copy is not charged"
    )
    return DeadLetter(msgspec.json.encode(rated.event), "$.event_id", reason, rated.partition, rated.offset)


def alert_record(rated: Rated, crossing: StageCrossing, period_key: str) -> tuple[bytes, bytes]:
    event = rated.event
    alert = BudgetStage(
        org_id=event.org_id,
        scope=crossing.scope,
        period=crossing.period,
        period_key=period_key,
        stage=crossing.stage,
        limit_nanos=crossing.limit,
        spent_nanos=crossing.spent,
        event_id=event.event_id,
        occurred_at=event.occurred_at.isoformat(),
        detected_at=datetime.now(UTC).isoformat(),
    )
    return event.org_id.encode(), encode_alert(alert)
