"""The pipeline's own rules with in-memory fakes of Redis and ClickHouse (no service): acknowledge only what
is stored, store each offset once across a rebalance, wait for the batch under way, retry Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from bus.topics import Topics
from enforcement.decision import SettleResult
from enforcement.keys import PeriodKeys
from schemas.events import UsageEvent, encode_event
from sinks.tables import UsageRow
from streams.metrics import WorkerMetrics
from streams.pipeline import Pipeline
from streams.processing import Message, Rated

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


class FakeApplier:
    """Counts each event id once; an offset applied before is stale but still to be stored (as SETTLE does)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.offsets: set[tuple[int, int]] = set()
        self.gate: asyncio.Event | None = None  # when set by a test: apply waits for it
        self.failures = 0  # the next applies that fail as an unreachable Redis would

    async def apply(self, rated: Sequence[Rated]) -> list[SettleResult]:
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise RedisConnectionError("connection refused")
        out = []
        for item in rated:
            where = (item.partition, item.offset)
            if where in self.offsets:
                out.append(
                    SettleResult(applied=False, duplicate=False, stale=True, released_reservation=False, sink=True)
                )
            elif item.event.event_id in self.ids:
                out.append(SettleResult(applied=False, duplicate=True, stale=False, released_reservation=False))
            else:
                self.ids.add(item.event.event_id)
                self.offsets.add(where)
                out.append(
                    SettleResult(applied=True, duplicate=False, stale=False, released_reservation=False, sink=True)
                )
        return out

    def periods_of(self, org_id: str, when: datetime) -> PeriodKeys:
        return PeriodKeys.at(when, "UTC")

    def unconfigured(self, org_id: str) -> bool:
        return False  # every org of these tests is configured


class FakeStore:
    def __init__(self) -> None:
        self.rows: list[UsageRow] = []

    def watermarks(self) -> dict[int, int]:
        marks: dict[int, int] = {}
        for row in self.rows:
            marks[row.kafka_partition] = max(marks.get(row.kafka_partition, -1), row.kafka_offset)
        return marks

    def insert_until_accepted(
        self,
        rows: Sequence[UsageRow],
        token: str,
        on_retry: Callable[[int, BaseException], None] | None = None,
        max_backoff_s: float = 5.0,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        self.rows.extend(rows)
        return 0


class Ack:
    def __init__(self) -> None:
        self.acked = False

    def ack(self) -> None:
        self.acked = True


def message(offset: int, partition: int = 0) -> Message:
    event = UsageEvent(
        event_id=f"e{partition}-{offset}",
        occurred_at=NOW,
        org_id="acme",
        user_id="ada",
        feature="chat",
        provider="openai",
        model="gpt-4o",
        input_tokens=10,
        cost_nanos=1_000,
    )
    return Message(partition, offset, encode_event(event), 0)


def setup() -> tuple[Pipeline, FakeApplier, FakeStore, list[tuple[str, bytes]]]:
    sent: list[tuple[str, bytes]] = []

    async def send(topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None) -> None:
        sent.append((topic, value))

    applier, store = FakeApplier(), FakeStore()
    metrics = WorkerMetrics(CollectorRegistry())
    pipeline = Pipeline(Topics("t."), applier, store, send, metrics, sink_rows=10**6, sink_interval_s=3600)
    return pipeline, applier, store, sent


def test_a_batch_is_acknowledged_only_once_its_rows_are_stored() -> None:
    async def run() -> None:
        pipeline, _, store, sent = setup()
        acks = [Ack() for _ in range(4)]
        await pipeline.handle([message(0), message(1), Message(0, 2, b"{not json", 0), message(3)], acks)
        assert [topic for topic, _ in sent] == ["t.usage.dlq"]  # the bad record, dead-lettered at once
        assert not any(a.acked for a in acks) and store.rows == []
        assert await pipeline.flush() == 3
        assert [r.kafka_offset for r in store.rows] == [0, 1, 3] and all(a.acked for a in acks)

    asyncio.run(run())


def test_a_batch_redelivered_before_its_flush_is_stored_once() -> None:
    """A rebalance hands the partition back before the buffered rows are inserted: the redelivered
    events are stale in Redis (still to be stored), but they are buffered already."""

    async def run() -> None:
        pipeline, _, store, _ = setup()
        batch = [message(0), message(1), message(2)]
        await pipeline.handle(batch, [Ack()])
        await pipeline.load_watermarks()  # on assignment: ClickHouse has none of them yet
        await pipeline.handle(batch, [Ack()])
        await pipeline.flush()
        assert [r.kafka_offset for r in store.rows] == [0, 1, 2]

    asyncio.run(run())


def test_a_drain_waits_for_the_batch_under_way() -> None:
    async def run() -> None:
        pipeline, applier, store, _ = setup()
        applier.gate = asyncio.Event()
        handling = asyncio.create_task(pipeline.handle([message(0), message(1)], [Ack()]))
        await asyncio.sleep(0.01)
        draining = asyncio.create_task(pipeline.drain())  # a rebalance starts while the batch is applied
        await asyncio.sleep(0.01)
        assert not draining.done()
        applier.gate.set()
        await asyncio.gather(handling, draining)
        assert len(store.rows) == 2  # drained, so in ClickHouse before another worker reads the watermarks

    asyncio.run(run())


def test_redis_unreachable_is_retried_and_the_batch_applied_once() -> None:
    async def run() -> None:
        pipeline, applier, store, _ = setup()
        applier.failures = 2
        await pipeline.handle([message(0)], [Ack()])
        await pipeline.flush()
        assert len(store.rows) == 1 and applier.ids == {"e0-0"}
        assert pipeline.metrics.redis_failures._value.get() == 2

    asyncio.run(run())


def test_events_of_a_partition_moved_away_are_left_to_its_new_owner() -> None:
    """A batch gathered before a rebalance reaches the agent after it: its events of a partition now another
    worker's are neither counted nor stored nor acknowledged here (the new owner stores them)."""

    async def run() -> None:
        pipeline, applier, store, _ = setup()
        await pipeline.load_watermarks({0, 1})
        await pipeline.revoked()
        await pipeline.load_watermarks({1})  # partition 0 went to another worker
        batch = [message(5, partition=0), message(6, partition=1), message(7, partition=0)]
        acks = [Ack() for _ in batch]
        await pipeline.handle(batch, acks)
        await pipeline.flush()
        assert [(r.kafka_partition, r.kafka_offset) for r in store.rows] == [(1, 6)]
        assert applier.offsets == {(1, 6)}
        assert [a.acked for a in acks] == [False, True, False]
        assert pipeline.metrics.disowned._value.get() == 2

    asyncio.run(run())


def test_between_a_revoke_and_the_next_assignment_a_batch_waits() -> None:
    """Faust resumes the stream (from the committed offsets) while the assignment's watermarks may still be
    loading: a batch waits for them, and is then taken whole if its partitions stay this worker's."""

    async def run() -> None:
        pipeline, applier, store, _ = setup()
        await pipeline.load_watermarks({0})
        await pipeline.revoked()
        handling = asyncio.create_task(pipeline.handle([message(1)], [Ack()]))
        await asyncio.sleep(0.01)
        assert not handling.done() and applier.offsets == set()
        await pipeline.load_watermarks({0, 1})
        await handling
        await pipeline.flush()
        assert [(r.kafka_partition, r.kafka_offset) for r in store.rows] == [(0, 1)]

    asyncio.run(run())
