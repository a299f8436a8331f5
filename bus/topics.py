"""The Kafka topics of spendstream: names (prefixable per deployment) and how each is created."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Send", "TopicSpec", "Topics"]

Send = Callable[[str, bytes | None, bytes, list[tuple[str, bytes]] | None], Awaitable[None]]
"""Produces one record, (topic, key, value, headers), and returns once the broker has it."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = ""
    usage_partitions: int = 8

    @property
    def usage(self) -> str:
        return f"{self.prefix}usage.v1"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}usage.dlq"

    @property
    def config(self) -> str:
        return f"{self.prefix}config.v1"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts.v1"

    def specs(self) -> list[TopicSpec]:
        week = str(7 * 24 * 3600 * 1000)
        month = str(30 * 24 * 3600 * 1000)
        return [
            # Keyed by org: one org's events stay in order on one partition.
            TopicSpec(self.usage, self.usage_partitions, {"retention.ms": week, "cleanup.policy": "delete"}),
            TopicSpec(self.dlq, 1, {"retention.ms": month, "cleanup.policy": "delete"}),
            # Budgets, orgs and prices by key: the latest value of each key is kept forever.
            TopicSpec(self.config, 1, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}),
            TopicSpec(self.alerts, 4, {"retention.ms": month, "cleanup.policy": "delete"}),
        ]
