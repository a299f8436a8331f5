"""What a worker holds for ClickHouse between inserts: the rows, the events they came from, the messages to
acknowledge once they are stored, and the offsets they cover (which name the insert for deduplication)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sinks.tables import UsageRow
from streams.processing import Rated

__all__ = ["SinkBuffer"]


@dataclass
class SinkBuffer:
    rows: list[UsageRow] = field(default_factory=list)
    rated: list[Rated] = field(default_factory=list)  # the events of ``rows``: counted again after a Redis restore
    acks: list[Any] = field(default_factory=list)
    first_offsets: dict[int, int] = field(default_factory=dict)
    last_offsets: dict[int, int] = field(default_factory=dict)
    buffered_to: dict[int, int] = field(default_factory=dict)  # highest offset among ``rows``, per partition
    since: float = 0.0

    def token(self) -> str:
        """The insert's deduplication token: the offsets it covers, per partition (a retry sends the same)."""
        return ",".join(f"{p}:{self.first_offsets[p]}-{self.last_offsets[p]}" for p in sorted(self.last_offsets))
