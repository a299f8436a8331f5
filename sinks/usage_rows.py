"""The row an applied event is stored as, and the content digest that tells two copies of an event apart.
Pure: no I/O."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from schemas.events import UsageEvent
from schemas.pricing import CostSplit
from sinks.tables import UsageRow

__all__ = ["content_digest", "usage_row"]

_PRICE_PLACES = Decimal(1).scaleb(-18)  # prices are kept to 1e-18 USD a token
_DISCOUNT_PLACES = Decimal(1).scaleb(-9)


def usage_row(
    event: UsageEvent,
    cost_nanos: int,
    price_source: str,
    partition: int,
    offset: int,
    list_nanos: int | None = None,
    split: CostSplit | None = None,
    tags: dict[str, str] | None = None,
) -> UsageRow:
    """The row of an applied event, with its rating's detail when there is one and its org's declared tags."""
    return UsageRow(
        event.event_id,
        event.occurred_at,
        event.org_id,
        event.department_id or "",
        event.user_id,
        event.feature,
        event.provider,
        event.model,
        event.request_id or "",
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.reasoning_tokens,
        cost_nanos,
        price_source,
        event.status,
        event.latency_ms,
        event.metadata,
        event.api_key_id or "",
        event.service_tier or "",
        cost_nanos if list_nanos is None else list_nanos,
        list(split.cost_nanos) if split else [],
        [price.quantize(_PRICE_PLACES) for price in split.unit_prices] if split else [],
        split.discount.quantize(_DISCOUNT_PLACES) if split else Decimal(0),
        tags or {},
        partition,
        offset,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIGEST_SKIPS = {  # not what the producer said
    "event_id",
    "price_source",
    "list_cost_nanos",
    "cost_by_type_nanos",
    "usd_per_token",
    "discount",
    "tags",  # the org's declarations when it was stored, not the event's
    "kafka_partition",
    "kafka_offset",
}


def content_digest(row: UsageRow) -> bytes:
    """8 bytes of BLAKE2b over what a copy of an event must repeat to be the same event: its time (to the
    microsecond, in UTC), org, department, user, feature, provider, model, request id, tokens, rated cost,
    status, latency, metadata, API key and service tier. Its id, where it was read from and how it was
    priced play no part. The worker and the rebuild compute it alike, from the event or from its row."""
    at = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=UTC)
    values: list[Any] = [(at - _EPOCH) // timedelta(microseconds=1)]
    for name, value in zip(UsageRow._fields[2:], row[2:], strict=True):
        if name in _DIGEST_SKIPS:
            continue
        values.append(sorted(value.items()) if isinstance(value, dict) else value)
    return hashlib.blake2b(msgspec.msgpack.encode(values), digest_size=8).digest()
