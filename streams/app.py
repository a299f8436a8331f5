"""The Faust app: the only module that imports Faust.

The parts (pipeline, config follower, alert dispatcher, insights, Redis recovery) come from
:mod:`streams.wiring`; this module adds the transport. The usage agent takes batches
(``take_events``) and rates each while the batch before is applied (``Pipeline.submit``), holds each
message's acknowledgement until the pipeline says the batch is durable,
and Faust commits acknowledged offsets only. The alerts agent delivers ``alerts.v1``; timers flush,
check Redis's state, measure drift and run the insights on the leader.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from retries.policy import Retry
from schemas.config_records import ConfigRecord
from schemas.settings import Settings
from streams.drift import measure_drift_async, org_zones
from streams.processing import Message
from streams.wiring import build_parts, prepare

__all__ = ["Worker", "build"]

log = logging.getLogger("spendstream.worker")

FETCH_MAX_WAIT_MS = 50


class _PromptFetchThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust fixes the consumer's fetch_max_wait_ms at 1,500. A fetch covers only the partitions with
    nothing buffered, so when those are idle, records arriving meanwhile on the others wait for it to
    time out: a steady stream saw its events applied ~1.2 s late. 50 ms bounds that wait."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer


class _PromptFetchConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _PromptFetchThread(self, loop=self.loop, beacon=self.beacon)


class Worker:
    """The Faust app around the parts :func:`~streams.wiring.build_parts` makes from settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        app_id: str = "spendstream",
        batch_size: int = 5_000,
        batch_within_s: float = 0.02,
        sink_rows: int = 10_000,
        sink_interval_s: float = 1.0,
    ) -> None:
        self.settings = settings
        (settings.stack.home / "faust").mkdir(parents=True, exist_ok=True)  # Faust's data dir, out of the cwd
        self.app = faust.App(
            f"{settings.kafka.topic_prefix}{app_id}",
            broker=";".join(f"kafka://{host.strip()}" for host in settings.kafka.bootstrap.split(",")),
            value_serializer="raw",
            key_serializer="raw",
            web_enabled=False,
            datadir=str(settings.stack.home / "faust" / "{conf.id}"),
            topic_allow_declare=False,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=0.5,
            # a killed worker's partitions move after 10 s, not Faust's 60 (Kafka's own default is 45)
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
            broker_max_poll_records=10_000,
            stream_buffer_maxsize=50_000,
            # A stop or rebalance does not wait for held messages to be acknowledged: a batch that failed
            # (and so is never acknowledged) kept the worker from stopping at all. What is not acknowledged is
            # not committed, and its redelivery is recognised exactly by the offset watermarks.
            stream_wait_empty=False,
            producer_linger_ms=1,
            producer_acks=-1,
        )
        # Faust picks its transport by the broker URL's scheme, so the prompt fetch is set on the aiokafka
        # transport when a worker is built (not when this module is imported); only workers use it
        faust_aiokafka.Transport.Consumer = _PromptFetchConsumer
        self.parts = build_parts(
            settings,
            self._send,
            sink_rows=sink_rows,
            sink_interval_s=sink_interval_s,
            on_restored=self._after_restore,
        )
        self.topics = self.parts.topics
        self.metrics = self.parts.metrics
        self.pipeline = self.parts.pipeline
        self.pipeline.on_failure = partial(self._crash, "the usage agent")  # a batch applied after its agent moved on
        self.dispatcher = self.parts.dispatcher
        self.insights = self.parts.insights
        self.recovery = self.parts.recovery
        self._usage_topic = self.app.topic(self.topics.usage, value_type=bytes, key_type=bytes)
        self._alerts_topic = self.app.topic(self.topics.alerts, value_type=bytes, key_type=bytes)
        self._config_ends: dict[int, int] = {}
        self._insights_owner = False
        self._assigned_at = 0.0
        self._last_batch = (0.0, 0.0)  # (when handled, Kafka timestamp of its last message)
        self.batch_size = batch_size
        self.batch_within_s = batch_within_s
        self._register()

    async def _send(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None) -> None:
        future = await self.app.producer.send(topic, key, value, partition=None, timestamp=None, headers=headers or [])
        await future

    def _after_restore(self) -> None:
        self._insights_owner = False  # the insights reload their checkpoint (or start again from ClickHouse)

    def prepare(self) -> None:
        """Before the app starts: see :func:`~streams.wiring.prepare`."""
        self._config_ends = prepare(self.parts)

    def _register(self) -> None:
        """Every agent, task, timer and signal handler of the worker, registered with Faust in one place; each is
        a method below, in this order."""
        app, insights = self.app, self.settings.insights
        app.agent(self._usage_topic, name="usage")(self.usage_agent)
        app.agent(self._alerts_topic, name="alerts")(self.alerts_agent)
        app.task(self.follow_config)
        app.timer(0.1)(self.flush_timer)
        app.timer(1.0)(self.redis_state_timer)
        app.timer(1.0)(self.watchdog_timer)
        app.timer(30.0)(self.health_timer)
        app.timer(self.settings.alerts.resolve_check_s)(self.resolve_timer)
        app.timer(0.5)(self.denials_timer)
        app.timer(1.0)(self.alert_history_timer)
        if insights.enabled:
            app.timer(min(5.0, insights.spike_bucket_s / 4))(self.spikes_timer)
            app.timer(insights.forecast_every_s)(self.forecast_timer)
        app.on_partitions_assigned.connect(self.on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]
        app.on_before_shutdown.connect(self.on_shutdown)  # type: ignore[arg-type]

    # --- agents ---------------------------------------------------------------------------------------

    async def usage_agent(self, stream: Any) -> None:
        """Usage events, in batches: each rated while the batch before is applied (``Pipeline.submit``); a
        message is acknowledged once its batch is durable. Any failure ends the worker (exit code 1)."""
        try:
            async for events in stream.take_events(self.batch_size, within=self.batch_within_s):
                await self._submit(events)
        except Exception as exc:  # noqa: BLE001 - any failure ends the worker, loudly, with exit code 1
            self._crash("the usage agent", exc)

    async def _submit(self, events: list[Any]) -> None:
        messages = []
        for event in events:
            message = event.message
            message.incref()  # held until the batch is durable; released by Pipeline.flush
            messages.append(Message(message.partition, message.offset, event.value, int(message.timestamp * 1000)))
        await self.pipeline.submit(messages, events)  # applied while the next batch is taken and rated
        last = events[-1].message
        self._last_batch = (time.time(), float(last.timestamp))
        if last.tp not in self.app.consumer.assignment():  # a rebalance took it while the batch waited
            return
        highwater = self.app.consumer.highwater(last.tp)
        if highwater is not None:
            self.metrics.lag.labels(str(last.partition)).set(max(0, highwater - last.offset - 1))

    async def alerts_agent(self, stream: Any) -> None:
        """``alerts.v1``, delivered in batches; a batch is acknowledged once delivered (Redis down mid-batch:
        retried; the delivery ledger keeps what went out from going again)."""
        try:
            async for events in stream.take_events(200, within=0.01):
                for event in events:
                    event.message.incref()  # a stop mid-delivery must not commit: acked below, once delivered
                values = [event.value for event in events]
                await self._retrying("alerts", partial(self.dispatcher.handle, values))
                for event in events:
                    event.ack()
        except Exception as exc:  # noqa: BLE001 - any failure ends the worker, loudly, with exit code 1
            self._crash("the alerts agent", exc)

    async def follow_config(self) -> None:
        """``config.v1`` from where :meth:`prepare` left it: each record applied (Redis, the audit row) until
        it succeeds, since a budget must not be skipped."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(self.topics.config, p) for p in self._config_ends] or [
                TopicPartition(self.topics.config, 0)
            ]
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, self._config_ends.get(tp.partition, 0))
            while True:
                for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                    for record in records:
                        config = ConfigRecord((record.key or b"").decode(), record.value)
                        apply = partial(self.parts.follower.apply, config, tp.partition, record.offset)
                        await self._retrying("config", apply)
        finally:
            await consumer.stop()

    # --- timers (a failed round is logged and counted; the next one tries again) ---------------------

    async def flush_timer(self) -> None:
        if self.pipeline.flush_due():
            self.pipeline.start_flush()

    async def redis_state_timer(self) -> None:
        await self._safely("redis_state", self.recovery.check)

    async def watchdog_timer(self) -> None:
        for name, service in (("the consumer", self.app.consumer), ("the fetcher", self.app._fetcher)):
            if service.crashed:
                self._crash(name, service.crash_reason or RuntimeError("crashed"))

    async def health_timer(self) -> None:
        if self._leads():
            await self._safely("health", self._measure_health)

    async def resolve_timer(self) -> None:
        if self._leads():
            await self._safely("resolve_check", self.dispatcher.check_open)

    async def denials_timer(self) -> None:
        if self._leads():  # one reader of the queue: two could trim each other's unsent denials
            await self._safely("denials", self.dispatcher.pump_denials)

    async def alert_history_timer(self) -> None:
        await self._safely("alert_history", self.dispatcher.flush_history)

    async def spikes_timer(self) -> None:
        await self._safely("spikes", self._spikes)  # loading the saved state may fail too: Redis may be down

    async def forecast_timer(self) -> None:
        await self._safely("forecasts", self._forecasts)

    async def _spikes(self) -> None:
        if await self._runs_insights():
            await self.insights.spikes_tick()

    async def _forecasts(self) -> None:
        if await self._runs_insights():
            await self.insights.forecast_tick()

    # --- signals --------------------------------------------------------------------------------------

    async def on_assigned(self, sender: Any, assigned: Any, **kwargs: Any) -> None:
        self._assigned_at = time.time()
        owned = {tp.partition for tp in assigned if tp.topic == self.topics.usage}
        await self._retrying("watermarks", lambda: self.pipeline.load_watermarks(owned))  # ClickHouse may be down

    async def on_revoked(self, sender: Any, revoked: Any, **kwargs: Any) -> None:
        await self.pipeline.revoked()

    async def on_shutdown(self, sender: Any, **kwargs: Any) -> None:
        self.pipeline.stopping = True  # an insert retrying against a dead ClickHouse gives up; nothing is acked
        await self.dispatcher.flush_history()

    # --- helpers --------------------------------------------------------------------------------------

    def _crash(self, what: str, exc: BaseException) -> None:
        """A part the worker cannot go on without has failed: end the process at once with exit code 1, so its
        supervisor restarts it. Offsets are committed only after their effects are durable, so ending here
        loses nothing, and the restart re-reads what was not committed. Faust's graceful stop is not used: it
        acknowledges the events buffered behind the failed batch, and for a group with no commit yet it then
        commits past the unacknowledged gap."""
        log.critical("%s failed (%r); the worker exits so that it is restarted", what, exc, exc_info=exc)
        logging.shutdown()
        os._exit(1)

    async def _safely(self, task: str, run: Callable[[], Awaitable[Any]]) -> None:
        """Run one round of a timer. A failure (Redis or ClickHouse unreachable) is logged and counted and
        the next round tries again: an exception would end a Faust timer for good."""
        try:
            await run()
        except Exception:
            self.metrics.background_failures.labels(task).inc()
            log.warning("%s failed; the next round tries again", task, exc_info=True)

    async def _retrying(self, task: str, run: Callable[[], Awaitable[Any]]) -> None:
        """Run until it succeeds, backing off: for work that must not be skipped (config, alert batches)."""

        def failed(attempt: int, exc: BaseException) -> None:
            self.metrics.background_failures.labels(task).inc()
            log.warning("%s failed (attempt %d), retrying", task, attempt, exc_info=exc)

        await Retry(base_s=0.2, on_failure=failed).acall(run)

    def _leads(self) -> bool:
        """Whether this worker holds partition 0 of the usage topic: the one worker that runs the
        deployment-wide jobs (insights, denial alerts, incident resolution, health gauges). Faust's own
        leader election needs a topic of its own, which this app does not declare."""
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # noqa: BLE001 - not started or rebalancing: not now
            return False
        return any(tp.topic == self.topics.usage and tp.partition == 0 for tp in assigned)

    async def _runs_insights(self) -> bool:
        """The leader runs the insights; a worker that takes the role over first reads the saved state."""
        holds = self._leads()
        if holds and not self._insights_owner:
            await self.insights.load()
        self._insights_owner = holds
        return holds and self._caught_up()

    async def _measure_health(self) -> None:
        """Per org: Redis-minus-ClickHouse month-to-date drift, and open reservations (for Prometheus)."""
        parts = self.parts
        zones = await asyncio.to_thread(org_zones, parts.store, parts.config)
        for org, nanos in (await measure_drift_async(parts.redis, parts.store, parts.layout, zones)).items():
            self.metrics.drift.labels(org).set(nanos)
            self.metrics.reservations_open.labels(org).set(await parts.redis.hlen(parts.layout.reservations(org)[0]))

    def _caught_up(self) -> bool:
        """Whether ClickHouse holds what has been produced, near enough to score closed buckets: nothing
        buffered, and the last batch either recent in event time or long ago (no traffic). After a start
        or a rebalance, a backlog is drained first, or its buckets would be scored before their data."""
        now = time.time()
        if now - self._assigned_at < 3.0 or self.pipeline.buffered_rows():
            return False
        handled_at, event_ts = self._last_batch
        return now - handled_at > 2.0 or handled_at - event_ts < self.settings.insights.spike_lag_s

    def run(self) -> int:
        """Run until stopped (SIGTERM or SIGINT); flushes what it holds on the way out. The exit code: 0 after a
        stop; 1 when the usage or alerts agent, the consumer or its fetcher failed (see :meth:`_crash`)."""
        worker = faust.Worker(self.app, loglevel="WARNING", quiet=True)
        # What is built by now (modules, Faust, the parts, ~200k objects) lives as long as the worker: moved
        # out of the collector's reach, a full collection no longer walks it. Measured in bench/pipeline.py:
        # full collections paused the event loop 120-175 ms every few seconds (freshness p99 ~500 ms); frozen,
        # 60-77 ms (p99 ~124 ms).
        gc.collect()
        gc.freeze()
        try:
            worker.execute_from_commandline()
        except SystemExit as stopped:
            return stopped.code if isinstance(stopped.code, int) else 1
        return 0


def build(settings: Settings, **kwargs: Any) -> Worker:
    worker = Worker(settings, **kwargs)
    worker.prepare()
    return worker
