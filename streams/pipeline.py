"""One worker's usage pipeline, apart from Faust: decode, rate, apply to Redis, alert, sink.

The Faust agent hands it batches of messages; it answers which of them may be
acknowledged. An acknowledgement (and so the offset commit) happens only
after the batch's effects are durable: Redis applied, dead letters and alerts
delivered, and the ClickHouse insert accepted. ClickHouse inserts are
batched (at least ``sink_rows`` rows or at most ``sink_interval_s`` old), so
Redis stays fresh to the millisecond while ClickHouse gets large inserts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import BusyLoadingError, ClusterDownError, OutOfMemoryError, ReadOnlyError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bus.topics import Send, Topics
from enforcement.core import StateNotLoadedError
from enforcement.decision import SettleResult
from retries.policy import Retry
from schemas.config_records import ConfigState
from schemas.pricing import PriceCatalogue
from sinks.tables import UsageRow
from sinks.usage_rows import usage_row
from streams.dead_letters import send_dead_letter
from streams.metrics import WorkerMetrics
from streams.ownership import Ownership
from streams.ports import Applier, RowSink
from streams.processing import Bounds, DeadLetter, Message, Rated, alert_record, conflict_letter, process_batch
from streams.sink_buffer import SinkBuffer
from streams.usage_alerts import UsageAlerts

__all__ = ["Applier", "Pipeline", "RowSink"]  # the ports re-exported for the tests' fakes

log = logging.getLogger("spendstream.pipeline")

# Redis answers that pass: unreachable, loading its data, a replica being promoted, out of memory until
# something is freed. Anything else (a permission the worker lacks, a script error) is a fault that
# retrying cannot mend: it ends the worker, loudly, so that its supervisor restarts it.
_REDIS_PASSING = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    BusyLoadingError,
    ReadOnlyError,
    OutOfMemoryError,
    TryAgainError,
    ClusterDownError,
)


class _RestoredError(Exception):
    """An org's cap state was restored during an apply: apply again at once."""

    retry_after = 0.0


class Pipeline:
    def __init__(
        self,
        topics: Topics,
        applier: Applier,
        store: RowSink,
        send: Send,
        metrics: WorkerMetrics,
        sink_rows: int = 10_000,
        sink_interval_s: float = 1.0,
        max_buffered_rows: int = 500_000,
        config: ConfigState | None = None,
        bounds: Bounds | None = None,
        *,
        open_gate: asyncio.Event | None = None,
        on_not_loaded: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.topics = topics
        self.applier = applier
        self.store = store
        self.send = send
        self.metrics = metrics
        self.config = config if config is not None else ConfigState()
        self.sink_rows = sink_rows
        self.sink_interval_s = sink_interval_s
        self.max_buffered_rows = max_buffered_rows
        self.bounds = bounds or Bounds()
        # per partition, the highest offset stored in ClickHouse or buffered here to be: a redelivered event at
        # or below it is not stored again (the buffered rows are inserted, or the worker ends and reloads it)
        self.ch_watermarks: dict[int, int] = {}
        self.usage_alerts = UsageAlerts(send, topics.alerts, metrics, applier.periods_of)
        self._pending = SinkBuffer()
        self._lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        self._flushing: asyncio.Future[None] | None = None
        self._handling = asyncio.Lock()  # held while a batch is under way: a drain waits for it to be buffered
        self._inflight: asyncio.Future[None] | None = None  # the batch being applied (see submit)
        self.on_failure: Callable[[BaseException], None] | None = None  # a batch failed with none after it
        self.stopping = False
        self.open = open_gate  # usage is applied only while it is set (a restore of Redis's state clears it)
        self.on_not_loaded = on_not_loaded  # restores an org whose state Redis does not hold (the Recovery)
        self.rebalances = 0  # revokes so far (see revoked)
        self.ownership = Ownership()  # the usage partitions this worker owns (see submit)

    @property
    def catalogue(self) -> PriceCatalogue:
        return self.config.catalogue()

    async def load_watermarks(self, owned: Collection[int] | None = None) -> None:
        """ClickHouse's watermarks (after a rebalance), raised to what is buffered here to be stored; then the
        events of the ``owned`` partitions (the assignment's) are taken, and no others."""
        async with self._flush_lock:  # an insert under way is in ClickHouse's answer, or not yet taken
            stored = await asyncio.to_thread(self.store.watermarks)
            async with self._lock:
                for partition, offset in self._pending.buffered_to.items():
                    stored[partition] = max(stored.get(partition, -1), offset)
                self.ch_watermarks = stored
                self.ownership.assigned(owned)

    async def _raise_watermarks(self) -> None:
        """Before storing events Redis counted before (a redelivery after a crash or a rebalance): what ClickHouse
        holds now, as a watermark loaded at the assignment may predate the last insert of the partition's owner."""
        stored = await asyncio.to_thread(self.store.watermarks)
        for partition, offset in stored.items():
            self.ch_watermarks[partition] = max(self.ch_watermarks.get(partition, -1), offset)

    async def handle(self, messages: Sequence[Message], acks: Sequence[Any]) -> None:
        """Process one batch, to the end; ``acks`` are acknowledged once the batch is durable everywhere."""
        await self.submit(messages, acks)
        await self.settled()

    async def submit(self, messages: Sequence[Message], acks: Sequence[Any]) -> None:
        """Rate one batch and start applying it, returning while Redis applies it: the agent takes and rates
        the next batch meanwhile, so the worker's CPU and Redis's work side by side. Batches are applied one
        after another, in order (a batch waits here for the one before it). Raises what the batch before
        failed with; a failure with no batch after it goes to ``on_failure``. ``acks``: one a message, or one
        for the batch. Only events of partitions this worker owns are taken (:mod:`streams.ownership`)."""
        await self.ownership.known()
        messages, acks = self._owned(messages, acks)
        if not messages:
            return
        taken = self.rebalances  # the batch was taken in this assignment
        rated, dead = process_batch(messages, self.catalogue, datetime.now(UTC), self.bounds, self.config.orgs)
        await self.settled()
        task = asyncio.ensure_future(self._finish(messages, acks, rated, dead, taken))
        task.add_done_callback(self._finished)
        self._inflight = task

    def _owned(self, messages: Sequence[Message], acks: Sequence[Any]) -> tuple[Sequence[Message], Sequence[Any]]:
        kept, acks = self.ownership.keep(messages, acks)
        if len(kept) < len(messages):
            log.info("%d events of partitions now another worker's are left to it", len(messages) - len(kept))
            self.metrics.disowned.inc(len(messages) - len(kept))
        return kept, acks

    async def settled(self) -> None:
        """Wait until the batch under way is applied and buffered; raises what it failed with."""
        task = self._inflight
        if task is not None and task is not asyncio.current_task():
            await task

    def _finished(self, task: asyncio.Future[None]) -> None:
        failure = None if task.cancelled() else task.exception()
        if failure is not None and self.on_failure is not None:
            self.on_failure(failure)

    async def _finish(
        self,
        messages: Sequence[Message],
        acks: Sequence[Any],
        rated: list[Rated],
        dead: list[DeadLetter],
        taken: int,
    ) -> None:
        async with self._handling:
            if taken != self.rebalances:  # taken before a revoke: left, unacknowledged, to the partitions' owners
                log.info("%d events taken before a rebalance are left to their partitions' owners", len(messages))
                return
            self.metrics.consumed.inc(len(messages))
            self.metrics.batch_size.observe(len(messages))
            await self._handle(messages, acks, rated, dead)
        if self.buffered_rows() >= self.max_buffered_rows:
            await self.drain()  # backpressure: stop taking events until ClickHouse has caught up

    async def _handle(
        self, messages: Sequence[Message], acks: Sequence[Any], rated: list[Rated], dead: list[DeadLetter]
    ) -> None:
        deliveries: list[Awaitable[None]] = [self._dead_letter(letter) for letter in dead]
        for letter in dead:
            self.metrics.dead_lettered.labels(letter.field.split("[")[0][:40]).inc()
        began = time.perf_counter()
        results = await self._apply_until_done(rated)
        self.metrics.redis_seconds.observe(time.perf_counter() - began)
        if any(r.stale and r.sink for r in results):  # redelivered: ask ClickHouse afresh what it holds
            await self._raise_watermarks()
        now_ms = time.time() * 1000
        for item in rated:
            if item.timestamp_ms:
                self.metrics.freshness.observe(max(0.0, now_ms - item.timestamp_ms) / 1000)
        rows, stored = self._account(rated, results, deliveries)
        if deliveries:
            await asyncio.gather(*deliveries)
        async with self._lock:
            pending = self._pending
            if not pending.rows and not pending.acks:
                pending.since = time.monotonic()
            pending.rows.extend(rows)
            pending.rated.extend(stored)
            pending.acks.extend(acks)
            for message in messages:
                pending.first_offsets.setdefault(message.partition, message.offset)
                pending.last_offsets[message.partition] = message.offset
            for row in rows:
                if row.kafka_offset > self.ch_watermarks.get(row.kafka_partition, -1):
                    self.ch_watermarks[row.kafka_partition] = row.kafka_offset
                partition = row.kafka_partition
                pending.buffered_to[partition] = max(pending.buffered_to.get(partition, -1), row.kafka_offset)
        self.metrics.buffered_rows.set(self.buffered_rows())
        if self.flush_due():
            self.start_flush()

    async def _dead_letter(self, letter: DeadLetter) -> None:
        await send_dead_letter(self.send, self.topics, letter, self.metrics, lambda: self.stopping)

    async def _apply_until_done(self, rated: Sequence[Rated]) -> list[SettleResult]:
        """Apply to Redis, retrying while it cannot answer: the stream waits, nothing is skipped.

        A retry is exact: events the failed attempt did apply are recognised by their offsets."""

        async def once() -> list[SettleResult]:
            if self.open is not None:
                await self.open.wait()  # a restore of Redis's state is under way
            try:
                return await self.applier.apply(rated)
            except StateNotLoadedError as exc:
                if self.on_not_loaded is None:
                    raise
                await self.on_not_loaded(exc.org_id)
                raise _RestoredError from exc

        def failed(attempt: int, exc: BaseException) -> None:
            if not isinstance(exc, _RestoredError):
                self.metrics.redis_failures.inc()
                log.warning("Redis apply failed (attempt %d), retrying the batch: %s", attempt, exc)

        policy = Retry((*_REDIS_PASSING, _RestoredError), base_s=0.1, stop=lambda: self.stopping, on_failure=failed)
        return await policy.acall(once)

    def buffered_rows(self) -> int:
        return len(self._pending.rows)

    def start_flush(self) -> None:
        """Flush in the background: Redis keeps applying while ClickHouse inserts."""
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush_logged())

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception:
            log.exception("flush to ClickHouse failed; the batch stays unacknowledged and will be redelivered")
            raise

    async def revoked(self) -> None:
        """Partitions are being revoked: what is under way is stored before they go (:meth:`drain`), and a batch
        taken before is not applied after it (it was stored twice: here, and by the new owner, which had read
        ClickHouse's watermarks before this worker's late insert)."""
        self.rebalances += 1
        self.ownership.revoked()  # until the next assignment, and its watermarks, say which partitions
        await self.drain()

    async def drain(self) -> None:
        """Wait for the batch and the flush under way, then flush what is left (before a rebalance or a stop).

        Faust does not wait for the agent at a rebalance: a batch still being applied would otherwise be
        buffered after the drain, and inserted after another worker (or this one, reassigned) read the
        watermarks and took the same events again."""
        await asyncio.gather(self.settled(), return_exceptions=True)  # a failure ends the worker (on_failure)
        async with self._handling:
            if self._flushing is not None:
                await asyncio.gather(self._flushing, return_exceptions=True)
            await self.flush()

    def _account(
        self, rated: Sequence[Rated], results: Sequence[SettleResult], deliveries: list[Awaitable[None]]
    ) -> tuple[list[UsageRow], list[Rated]]:
        rows: list[UsageRow] = []
        stored: list[Rated] = []
        counts = [0, 0, 0]  # applied, duplicates, redelivered: counted into the metrics once per batch
        for item, result in zip(rated, results, strict=True):
            if result.applied:
                counts[0] += 1
                if self.applier.unconfigured(item.event.org_id):
                    self.usage_alerts.unconfigured(item, deliveries)
                if item.price_source != "catalogue":
                    self.metrics.unpriced.labels(item.price_source).inc()
                    self.usage_alerts.unpriced(item, deliveries)
            elif result.duplicate or result.stale:
                counts[1 if result.duplicate else 2] += 1
            elif result.conflict_with is not None:
                letter = conflict_letter(item, result.conflict_with)
                self.metrics.dead_lettered.labels(letter.field).inc()
                deliveries.append(self._dead_letter(letter))
            if result.sink and item.offset > self.ch_watermarks.get(item.partition, -1):
                rows.append(
                    usage_row(
                        item.event,
                        item.cost_nanos,
                        item.price_source,
                        item.partition,
                        item.offset,
                        item.list_nanos,
                        item.split,
                        item.tags,
                    )
                )
                stored.append(item)
            for crossing in result.crossings:
                periods = self.applier.periods_of(item.event.org_id, item.event.occurred_at)
                period_key = periods.key(crossing.period)
                key, value = alert_record(item, crossing, period_key)
                deliveries.append(self.send(self.topics.alerts, key, value, None))
                self.metrics.alerts.labels("budget_stage").inc()
        metrics = (self.metrics.applied, self.metrics.duplicates, self.metrics.redelivered)
        for counter, count in zip(metrics, counts, strict=True):
            counter.inc(count)
        return rows, stored

    def flush_due(self) -> bool:
        pending = self._pending
        if not pending.acks:
            return False
        return (
            len(pending.rows) >= self.sink_rows
            or time.monotonic() - pending.since >= self.sink_interval_s
            or len(pending.rows) >= self.max_buffered_rows
        )

    async def flush(self) -> int:
        """Insert the buffered rows (retrying until accepted), then acknowledge their messages."""
        async with self._flush_lock:
            return await self._flush_once()

    @contextlib.asynccontextmanager
    async def flushes_held(self) -> AsyncIterator[None]:
        """While held: the insert under way has finished, and no other starts (a Redis restore reads
        ClickHouse and must see every row this worker will not count again)."""
        async with self._flush_lock:
            yield

    async def reapply_pending(self) -> int:
        """Count again in Redis the events applied before a restore whose rows are not in ClickHouse yet:
        the restore, summing ClickHouse, could not see them. Call with flushes held."""
        async with self._lock:
            rated = list(self._pending.rated)
        if rated:
            await self.applier.apply(rated)
        return len(rated)

    async def _flush_once(self) -> int:
        async with self._lock:
            pending, self._pending = self._pending, SinkBuffer()
        if not pending.acks:
            return 0
        if pending.rows:
            token = pending.token()
            began = time.perf_counter()
            await asyncio.to_thread(
                self.store.insert_until_accepted,
                pending.rows,
                token,
                self._insert_failed,
                5.0,
                lambda: self.stopping,
            )
            self.metrics.clickhouse_seconds.observe(time.perf_counter() - began)
            self.metrics.clickhouse_rows.inc(len(pending.rows))
            for row in pending.rows:
                if row.kafka_offset > self.ch_watermarks.get(row.kafka_partition, -1):
                    self.ch_watermarks[row.kafka_partition] = row.kafka_offset
        for event in pending.acks:
            event.ack()
        self.metrics.buffered_rows.set(self.buffered_rows())
        return len(pending.rows)

    def _insert_failed(self, attempt: int, exc: BaseException) -> None:
        self.metrics.clickhouse_failures.inc()
        log.warning("ClickHouse insert failed (attempt %d), holding the batch and retrying: %s", attempt, exc)
