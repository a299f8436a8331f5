"""Creating spendstream's Kafka topics (confluent-kafka's admin client), with their partitions, retention
and compaction: for the CLI, the worker's start-up, the publishers and the tests alike."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from bus.topics import Topics

__all__ = ["ensure_topics"]

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
