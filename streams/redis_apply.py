"""Applying rated events to the live spend in Redis, in pipelined batches.

Every event goes through the same ``SETTLE`` script that settles proxy
reservations, with its partition and offset, so a redelivery is recognised
exactly (the per-org, per-partition offset watermark lives with the counters)
and a second event with the same ``event_id`` within the window is a
duplicate, or, when its content differs, a conflict that is dead-lettered. One pipeline round trip per batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from enforcement import core
from enforcement.decision import SettleResult
from enforcement.keys import UNCONFIGURED, KeyLayout, PeriodKeys
from enforcement.redis_clients import is_cluster
from enforcement.scripts import SETTLE
from enforcement.subject import Subject
from schemas.allocation_tags import cap_tags
from sinks.usage_rows import content_digest, usage_row
from streams.processing import Rated

__all__ = ["RedisApplier"]


class RedisApplier:
    def __init__(
        self,
        client: Any,
        layout: KeyLayout,
        window_s: int = core.DUPLICATE_WINDOW_S,
        org_cache_s: float = 30.0,
        chunk: int = 500,
    ) -> None:
        self.redis = client
        self.chunk = chunk  # events per script call: bounds how long one call holds Redis
        self.layout = layout
        self.window_s = window_s
        self.org_cache_s = org_cache_s
        self._script = client.register_script(SETTLE)
        self._zones: dict[str, tuple[float, str]] = {}
        self._unconfigured: set[str] = set()  # orgs whose "loaded" mark says no one configured them
        self._periods: dict[tuple[str, int], PeriodKeys] = {}

    async def _timezones(self, orgs: set[str]) -> dict[str, str]:
        """Each org's time zone (cached). Raises StateNotLoadedError, before anything is applied, for an org
        whose state is not loaded, so that a batch is never applied in part."""
        now = time.monotonic()
        missing = [org for org in orgs if org not in self._zones or now - self._zones[org][0] > self.org_cache_s]
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for org in missing:
                pipe.hmget(self.layout.org_settings(org), ["tz", "loaded"])
            not_loaded = []
            for org, (tz, loaded) in zip(missing, await pipe.execute(), strict=True):
                if loaded is None:
                    not_loaded.append(org)
                    continue
                self._zones[org] = (now, tz.decode() if isinstance(tz, bytes) else (tz or "UTC"))
                if loaded in (UNCONFIGURED, UNCONFIGURED.encode()):
                    self._unconfigured.add(org)
                else:
                    self._unconfigured.discard(org)
            if not_loaded:
                raise core.StateNotLoadedError(sorted(not_loaded)[0])
        return {org: self._zones[org][1] for org in orgs}

    def _period_keys(self, when: datetime, timezone: str) -> PeriodKeys:
        # Every zone offset is a multiple of 15 minutes: one lookup per zone and quarter hour.
        slot = int(when.timestamp()) // 900
        cached = self._periods.get((timezone, slot))
        if cached is None:
            if len(self._periods) > 50_000:
                self._periods.clear()
            cached = self._periods[(timezone, slot)] = PeriodKeys.at(when, timezone)
        return cached

    def unconfigured(self, org_id: str) -> bool:
        """Whether no one configured the org (its spend is counted, no budget applies), as last read."""
        return org_id in self._unconfigured

    def periods_of(self, org_id: str, when: datetime) -> PeriodKeys:
        """The org's day, week and month at ``when`` (its zone as last read)."""
        zone = self._zones.get(org_id, (0.0, "UTC"))[1]
        return self._period_keys(when, zone)

    async def _run(self, calls: Sequence[core.ScriptCall], orgs: Sequence[str]) -> list[Any]:
        """The script calls in one pipelined round trip, in order; on a Cluster (whose pipelines refuse
        scripts), the orgs at once, each org's calls in order: a later chunk applied first would raise the
        offset watermark past the earlier one, whose events would then pass for redeliveries."""
        if is_cluster(self.redis):
            replies: list[Any] = [None] * len(calls)

            async def in_order(org_id: str) -> None:
                for index, call in enumerate(calls):
                    if orgs[index] == org_id:
                        replies[index] = await self._script(keys=call.keys, args=call.args)

            await asyncio.gather(*(in_order(org_id) for org_id in dict.fromkeys(orgs)))
            return replies
        pipe = self.redis.pipeline(transaction=False)
        for call in calls:
            await self._script(keys=call.keys, args=call.args, client=pipe)
        return list(await pipe.execute())

    async def apply(self, batch: Sequence[Rated]) -> list[SettleResult]:
        """Apply a batch: one script call per org (in chunks), all in one pipelined round trip.

        Raises :class:`~enforcement.core.StateNotLoadedError` for an org whose state is not in Redis; the
        other orgs' calls may have been applied, and a retry of the batch recognises them by offset."""
        if not batch:
            return []
        zones = await self._timezones({r.event.org_id for r in batch})
        by_org: dict[str, list[int]] = {}
        for position, rated in enumerate(batch):
            by_org.setdefault(rated.event.org_id, []).append(position)
        calls: list[core.ScriptCall] = []
        order: list[tuple[str, list[int]]] = []
        subjects: dict[tuple[object, ...], Subject] = {}  # one object per subject: its scopes are made once
        for org_id, positions in by_org.items():
            for start in range(0, len(positions), self.chunk):
                chunk = positions[start : start + self.chunk]
                items = []
                for position in chunk:
                    rated = batch[position]
                    event = rated.event
                    fields = (
                        event.org_id,
                        event.user_id,
                        event.department_id,
                        event.feature,
                        event.model,
                        event.provider,
                        event.api_key_id,
                    )
                    tags = cap_tags(rated.tags)
                    subject = subjects.get((*fields, *tags))
                    if subject is None:
                        subject = subjects[(*fields, *tags)] = Subject.unchecked(*fields, tags)
                    items.append(
                        core.SettleItem(
                            subject,
                            event.event_id,
                            event.occurred_at,
                            rated.cost_nanos,
                            self._period_keys(event.occurred_at, zones[org_id]),
                            event.request_id,
                            rated.partition,
                            rated.offset,
                            content_digest(usage_row(event, rated.cost_nanos, "", rated.partition, rated.offset)),
                        )
                    )
                calls.append(core.settle_batch_call(self.layout, items, self.window_s))
                order.append((org_id, chunk))
        replies = await self._run(calls, [org_id for org_id, _ in order])
        results: list[SettleResult | None] = [None] * len(batch)
        for (org_id, chunk), reply in zip(order, replies, strict=True):
            for position, result in zip(chunk, core.parse_settle_batch(reply, org_id), strict=True):
                results[position] = result
        return [r for r in results if r is not None]
