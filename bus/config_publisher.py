"""Publishing config records (orgs, budgets, channels, routing, prices) to ``config.v1``: the one
path the CLI's ``budgets apply`` and the console's Budget Settings both take."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Producer

from bus.admin import ensure_topics
from bus.topics import Topics
from schemas.config_records import ConfigRecord

__all__ = ["ConfigPublishError", "publish_config"]


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
