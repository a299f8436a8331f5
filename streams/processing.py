"""Decode and rate a batch of raw usage messages: pure, no I/O.

Each message either becomes a :class:`Rated` event or a :class:`DeadLetter`
carrying its original bytes, the reason, the field and its source offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.events import EventError, UsageEvent, decode_event
from schemas.pricing import PriceCatalogue, UnpricedModelError, rate

__all__ = ["DeadLetter", "Message", "Rated", "process_batch"]


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


@dataclass(frozen=True, slots=True)
class DeadLetter:
    original: bytes
    field: str
    reason: str
    partition: int
    offset: int

    def headers(self, topic: str) -> list[tuple[str, bytes]]:
        return [
            ("spendstream-reason", self.reason.encode()),
            ("spendstream-field", self.field.encode()),
            ("spendstream-source", f"{topic}:{self.partition}:{self.offset}".encode()),
        ]


def process_batch(messages: Sequence[Message], catalogue: PriceCatalogue) -> tuple[list[Rated], list[DeadLetter]]:
    rated: list[Rated] = []
    dead: list[DeadLetter] = []
    for message in messages:
        if message.value is None:
            dead.append(
                DeadLetter(b"", "$", "empty message (a tombstone has no event)", message.partition, message.offset)
            )
            continue
        decoded = decode_event(message.value)
        if isinstance(decoded, EventError):
            dead.append(DeadLetter(message.value, decoded.field, decoded.reason, message.partition, message.offset))
            continue
        try:
            rating = rate(decoded, catalogue)
        except UnpricedModelError as exc:
            dead.append(DeadLetter(message.value, "$.model", str(exc), message.partition, message.offset))
            continue
        rated.append(
            Rated(
                decoded, rating.cost_nanos, rating.source.value, message.partition, message.offset, message.timestamp_ms
            )
        )
    return rated, dead
