"""Creating spendstream's Kafka topics (confluent-kafka's admin client), with their partitions, retention
and compaction: for the CLI, the worker's start-up, the publishers and the tests alike."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from bus.topics import Topics

__all__ = ["ensure_topics"]

log = logging.getLogger("spendstream.kafka")


def ensure_topics(bootstrap: str, topics: Topics, attempts: int = 5) -> None:
    """Create the topics that do not exist yet, with their partitions, retention and compaction.

    A request the client lost to a connection it replaced (on a cluster, librdkafka drops its bootstrap
    connections once it knows the brokers by id) is sent again; creating a topic twice is harmless."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=-1, config=spec.config)
        for spec in topics.specs()
        if spec.name not in existing
    ]
    for attempt in range(1, attempts + 1):
        if not wanted:
            return
        failed = []
        by_name = {topic.topic: topic for topic in wanted}
        for name, future in admin.create_topics(wanted).items():
            try:
                future.result(timeout=30)
            except KafkaException as exc:
                error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                if error is not None and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                if attempt == attempts or error is None or not (error.retriable() or error.code() in _LOST):
                    raise
                log.info("creating topic %s failed (%s), trying again", name, error.str())
                failed.append(by_name[name])
                continue
            log.info("created topic %s", name)
        wanted = failed
        if wanted:
            time.sleep(0.2 * attempt)


_LOST = {KafkaError._DESTROY_BROKER, KafkaError._TRANSPORT, KafkaError._TIMED_OUT}  # the request, not the topic
