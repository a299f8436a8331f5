"""``config.v1`` (orgs, budgets, channels, routing, prices, report templates, period closes), without Faust:
read to its end and folded into a :class:`ConfigState`, published (the one path the CLI's ``budgets apply``
and the console's Budget Settings both take), and followed by :class:`ConfigCache`, the one way a process
that reads config keeps it current (the console, the decision service's prices, the report scheduler).

The worker does not read config through here at run time: its Faust agent is the one writer of what the
caps read into Redis (``streams.config_follower``), and it reads the topic here once at start."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as CTopicPartition

from bus.topic_admin import ensure_topics
from bus.topics import Topics
from schemas.config_records import ConfigRecord, ConfigState

__all__ = ["ConfigCache", "ConfigPublishError", "config_state", "publish_config", "read_config"]

log = logging.getLogger("spendstream.config")


def read_config(bootstrap: str, topic: str) -> tuple[list[tuple[ConfigRecord, int, int]], dict[int, int]]:
    """Every record of the config topic up to its current end, and the next offset per partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "spendstream-config-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        records: list[tuple[ConfigRecord, int, int]] = []
        ends: dict[int, int] = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(CTopicPartition(topic, partition), timeout=10)
            ends[partition] = high
            if high <= low:
                continue
            consumer.assign([CTopicPartition(topic, partition, low)])
            while True:
                message = consumer.poll(5.0)
                if message is None:
                    break
                if message.error():
                    raise KafkaException(message.error())
                key = (message.key() or b"").decode()
                offset = int(message.offset() or 0)
                records.append((ConfigRecord(key, message.value()), partition, offset))
                if offset >= high - 1:
                    break
        return records, ends
    finally:
        consumer.close()


def config_state(bootstrap: str, topic: str, on_error: Callable[[ValueError], None] | None = None) -> ConfigState:
    """The config topic folded into its current state. A record the state refuses is passed to
    ``on_error`` (and skipped), or raises when there is none."""
    state = ConfigState()
    for record, _, _ in read_config(bootstrap, topic)[0]:
        try:
            state.apply(record)
        except ValueError as exc:
            if on_error is None:
                raise
            on_error(exc)
    return state


class ConfigPublishError(RuntimeError):
    """The broker did not acknowledge every record in time."""


def publish_config(bootstrap: str, topics: Topics, records: Sequence[ConfigRecord], timeout_s: float = 30) -> None:
    """Produce ``records`` in order (idempotent, acks from every replica) and wait until the broker has
    them all; raises :class:`ConfigPublishError` otherwise."""
    ensure_topics(bootstrap, topics)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for record in records:
        producer.produce(topics.config, key=record.key.encode(), value=record.value)
    if producer.flush(timeout_s) != 0:
        raise ConfigPublishError("config records were not delivered to Kafka")


class ConfigCache:
    """``config.v1`` folded into a :class:`ConfigState`, re-read every ``max_age_s``: by a daemon thread of its
    own once :meth:`follow` is called (a reader never waits for Kafka, except the first time and when it asks
    for ``fresh``), else on the first read after it is stale. What the process publishes itself is folded
    in at once."""

    def __init__(
        self,
        read: Callable[[], ConfigState],
        publish: Callable[[Sequence[ConfigRecord]], None] | None = None,
        max_age_s: float = 2.0,
    ) -> None:
        self._read, self._publish, self.max_age_s = read, publish, max_age_s
        self._state: ConfigState | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()
        self._following = False
        self._stopped = threading.Event()
        self._on_read: Callable[[ConfigState], None] | None = None
        self._published = 0  # how many publishes so far: a follower's read begun before one is dropped
        self.edit_lock = threading.Lock()  # one check-then-publish at a time (If-Match)

    def state(self, fresh: bool = False) -> ConfigState:
        """The config; ``fresh``: read from the topic now. Without a follower, re-read once it is stale."""
        with self._lock:
            stale = not self._following and time.monotonic() - self._read_at > self.max_age_s
            if fresh or self._state is None or stale:
                self._state = self._read()
                self._read_at = time.monotonic()
            return self._state

    @classmethod
    def of(cls, bootstrap: str, topics: Topics, max_age_s: float) -> ConfigCache:
        """The cache of this deployment's config topic; a record the state refuses is logged and skipped."""

        def read() -> ConfigState:
            return config_state(bootstrap, topics.config, on_error=lambda exc: log.warning("%s", exc))

        def publish(records: Sequence[ConfigRecord]) -> None:
            publish_config(bootstrap, topics, records)

        return cls(read, publish, max_age_s)

    def follow(self, on_read: Callable[[ConfigState], None] | None = None) -> None:
        """Re-read the topic every ``max_age_s`` in a daemon thread (until :meth:`stop`), so readers get what
        is cached (the first read is at once when nothing was read yet); ``on_read`` is called with each state
        read, in that thread."""
        self._following, self._on_read = True, on_read
        threading.Thread(target=self._follow, name="config-follower", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _follow(self) -> None:
        first = self._state is None  # nothing read yet: read at once rather than after max_age_s
        while first or not self._stopped.wait(self.max_age_s):
            first = False
            with self._lock:
                published = self._published
            try:
                state = self._read()
            except Exception:
                log.warning("reading config.v1 failed; keeping the last config read", exc_info=True)
                continue
            with self._lock:
                # A publish while reading was folded in already and the read may have missed it: keep that.
                if self._published == published:
                    self._state, self._read_at = state, time.monotonic()
            if self._on_read is not None:
                self._on_read(self.state())

    def publish(self, records: Sequence[ConfigRecord]) -> ConfigState:
        """Publish and fold the records in at once, so the next read shows them."""
        if self._publish is None:
            raise RuntimeError("this config cache only reads")
        self._publish(records)
        with self._lock:
            self._published += 1
            state = self._state or self._read()
            for record in records:
                state.apply(record)
            self._state, self._read_at = state, time.monotonic()
            return state
