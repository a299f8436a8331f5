"""Decoding and rating a batch, without services: what is dead-lettered, and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from schemas.events import encode_event
from schemas.pricing import PriceCatalogue, PriceEntry, TokenPrices
from streams.processing import DLQ_PAYLOAD_BYTES, Bounds, Message, process_batch
from tests.schemas.test_events import VALID

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
CATALOGUE = PriceCatalogue.of(
    [PriceEntry("openai", "gpt-4o-2024-08-06", datetime(2020, 1, 1, tzinfo=UTC), TokenPrices(Decimal(1), Decimal(1)))]
)


def message(doc: dict[str, object] | bytes, offset: int = 0) -> Message:
    value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return Message(3, offset, value, 0)


def good(**changes: object) -> dict[str, object]:
    doc = {**VALID, "occurred_at": NOW.isoformat(), "cost_nanos": None, **changes}
    return {k: v for k, v in doc.items() if v is not None}


def test_a_valid_event_is_rated() -> None:
    rated, dead = process_batch([message(good(input_tokens=3, output_tokens=0))], CATALOGUE, NOW)
    assert dead == [] and rated[0].cost_nanos == (3 + 800 + 64) * 1_000_000_000


def test_an_oversized_record_is_refused_before_decoding_and_dead_lettered_by_reference() -> None:
    """A 1 MB event stopped all ingestion: the dead-letter send itself was too large for the producer."""
    huge = json.dumps(good(feature="f" * 1_000_000)).encode()
    rated, dead = process_batch([message(huge, 41)], CATALOGUE, NOW)
    assert rated == [] and len(dead) == 1
    letter = dead[0]
    assert letter.field == "$" and "bytes" in letter.reason and "65536" in letter.reason
    assert len(letter.payload) == DLQ_PAYLOAD_BYTES and letter.payload == huge[:DLQ_PAYLOAD_BYTES]
    headers = dict(letter.headers("usage.v1"))
    assert headers["spendstream-original-bytes"] == str(len(huge)).encode()
    assert headers["spendstream-truncated"] == b"1"
    assert headers["spendstream-source"] == b"usage.v1:3:41"


def test_a_cost_above_a_million_usd_is_dead_lettered_at_rating() -> None:
    """A per-million price imported as per-token rated one event beyond 2^53 nano-USD and stopped the batch."""
    rated, dead = process_batch([message(good(input_tokens=100_000_000))], CATALOGUE, NOW)
    assert rated == [] and dead[0].field == "$.cost" and "per million" in dead[0].reason


def test_times_far_in_the_future_or_past_are_refused() -> None:
    bounds = Bounds(max_future=timedelta(hours=1), max_age=timedelta(days=400))
    batch = [
        message(good(occurred_at=(NOW + timedelta(hours=2)).isoformat()), 1),
        message(good(occurred_at=(NOW - timedelta(days=401)).isoformat()), 2),
        message(good(occurred_at=(NOW + timedelta(minutes=59)).isoformat()), 3),
        message(good(occurred_at=(NOW - timedelta(days=399)).isoformat()), 4),
    ]
    rated, dead = process_batch(batch, CATALOGUE, NOW, bounds)
    assert [d.offset for d in dead] == [1, 2] and {d.field for d in dead} == {"$.occurred_at"}
    assert [r.offset for r in rated] == [3, 4]


def test_invalid_input_keeps_its_order_and_its_bytes() -> None:
    batch = [
        Message(0, 1, None),
        message(b"\xff\xfe not utf-8", 2),
        message(b"[1, 2]", 3),
        message(good(org_id="acme\n"), 4),
        message(good(), 5),
    ]
    rated, dead = process_batch(batch, CATALOGUE, NOW)
    assert [r.offset for r in rated] == [5]
    assert [(d.offset, d.field) for d in dead] == [(1, "$"), (2, "$"), (3, "$"), (4, "$.org_id")]
    assert dead[1].original == b"\xff\xfe not utf-8"
    assert encode_event(rated[0].event)
