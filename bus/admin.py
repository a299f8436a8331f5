"""Topic administration and reading the config topic, without Faust: for the CLI, the decision
service, the rebuild and the worker's start-up alike."""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as CTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from bus.topics import Topics
from schemas.config_records import ConfigRecord, ConfigState

__all__ = ["config_state", "ensure_topics", "read_config"]

log = logging.getLogger("spendstream.kafka")


def ensure_topics(bootstrap: str, topics: Topics) -> None:
    """Create the topics that do not exist yet, with their partitions, retention and compaction."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=-1, config=spec.config)
        for spec in topics.specs()
        if spec.name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted).items():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        log.info("created topic %s", name)


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
