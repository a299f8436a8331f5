"""Settling a cost straight into Redis, as the stream worker does for every usage event.

The public cap client has no settle: costs reach Redis only through the usage topic. These helpers
run the same SETTLE script the worker runs, so the cap tests can put spend in place directly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from enforcement import core
from enforcement.decision import SettleResult
from enforcement.keys import KeyLayout, PeriodKeys
from enforcement.scripts import SETTLE
from enforcement.subject import Subject


def _call(
    layout: KeyLayout,
    timezone: str,
    subject: Subject,
    event_id: str,
    cost: int,
    request_id: str | None,
    when: datetime,
    partition: int | None,
    offset: int | None,
    digest: bytes = core.NO_DIGEST,
) -> core.ScriptCall:
    periods = PeriodKeys.at(when, timezone)
    return core.settle_call(
        layout, subject, event_id, when, cost, periods, request_id, partition, offset, digest=digest
    )


def _zone(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else (raw or "UTC")


class Settler:
    """Synchronous: ``settle(subject, event_id, cost, request_id=..., occurred_at=...)``. Events without an
    ``occurred_at`` all occurred when the settler was made, as a resent event keeps its time."""

    def __init__(self, client: Any, key_prefix: str) -> None:
        self.at = datetime.now(UTC)
        self.client = client
        self.layout = KeyLayout(key_prefix)
        self.script = client.register_script(SETTLE)

    def __call__(
        self,
        subject: Subject,
        event_id: str,
        cost: int,
        request_id: str | None = None,
        occurred_at: datetime | None = None,
        partition: int | None = None,
        offset: int | None = None,
        digest: bytes = core.NO_DIGEST,
    ) -> SettleResult:
        settings = self.layout.org_settings(subject.org_id)
        self.client.hsetnx(settings, "loaded", "default")  # as the worker does for an org without config
        zone = _zone(self.client.hget(settings, "tz"))
        when = occurred_at or self.at
        call = _call(self.layout, zone, subject, event_id, cost, request_id, when, partition, offset, digest)
        return core.parse_settle(self.script(keys=call.keys, args=call.args))


class AsyncSettler:
    """The same over ``redis.asyncio``."""

    def __init__(self, client: Any, key_prefix: str) -> None:
        self.at = datetime.now(UTC)
        self.client = client
        self.layout = KeyLayout(key_prefix)
        self.script = client.register_script(SETTLE)

    async def __call__(
        self,
        subject: Subject,
        event_id: str,
        cost: int,
        request_id: str | None = None,
        occurred_at: datetime | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> SettleResult:
        settings = self.layout.org_settings(subject.org_id)
        await self.client.hsetnx(settings, "loaded", "default")  # as the worker does for an org without config
        zone = _zone(await self.client.hget(settings, "tz"))
        when = occurred_at or self.at
        call = _call(self.layout, zone, subject, event_id, cost, request_id, when, partition, offset)
        return core.parse_settle(await self.script(keys=call.keys, args=call.args))
