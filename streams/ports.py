"""What the usage pipeline needs of Redis and of ClickHouse: the two ports it is built on, met by
:class:`~streams.redis_apply.RedisApplier` and :class:`~sinks.usage_store.UsageStore` (and by fakes in the
unit tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from enforcement.decision import SettleResult
from enforcement.keys import PeriodKeys
from sinks.tables import UsageRow
from streams.processing import Rated

__all__ = ["Applier", "RowSink"]


class Applier(Protocol):
    """What the pipeline needs of Redis (:class:`~streams.redis_apply.RedisApplier`; a fake in unit tests)."""

    async def apply(self, rated: Sequence[Rated]) -> list[SettleResult]: ...

    def periods_of(self, org_id: str, when: datetime) -> PeriodKeys: ...

    def unconfigured(self, org_id: str) -> bool: ...


class RowSink(Protocol):
    """What the pipeline needs of ClickHouse (:class:`~sinks.usage_store.UsageStore`; a fake in unit tests)."""

    def watermarks(self) -> dict[int, int]: ...

    def insert_until_accepted(
        self,
        rows: Sequence[UsageRow],
        token: str,
        on_retry: Callable[[int, BaseException], None] | None = None,
        max_backoff_s: float = 5.0,
        should_stop: Callable[[], bool] = ...,
    ) -> int: ...
