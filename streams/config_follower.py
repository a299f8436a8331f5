"""Applies config.v1 records: folds each into the shared :class:`ConfigState`, writes what the caps
read into Redis (budgets, org settings), and keeps an audit row in ClickHouse.

The pipeline reads the same :class:`ConfigState` (prices, budgets) but never writes config: this is
the one writer, used at start (the whole topic, before the agents run) and by the follower task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from enforcement.budget_store import encode_budget
from enforcement.keys import KeyLayout
from schemas.config_records import ConfigRecord, ConfigState
from sinks.tables import CONFIG_AUDIT, ConfigAuditRow
from sinks.usage_store import UsageStore
from streams.metrics import WorkerMetrics

__all__ = ["ConfigFollower"]

log = logging.getLogger("spendstream.config")


class ConfigFollower:
    def __init__(
        self,
        config: ConfigState,
        redis: Any,
        layout: KeyLayout,
        store: UsageStore,
        metrics: WorkerMetrics,
        state_restored: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.config = config
        self.redis = redis
        self.layout = layout
        self.store = store
        self.metrics = metrics
        # whether Redis holds restored state: an org is marked loaded only then (else a restore does it)
        self.state_restored = state_restored

    async def apply(self, record: ConfigRecord, partition: int, offset: int) -> None:
        """Fold a config record in, write what enforcement reads into Redis, and the audit row."""
        try:
            self.config.apply(record)
        except ValueError as exc:
            self.metrics.config_rejected.inc()
            log.error("%s", exc)
            return
        if record.kind == "budget":
            _, org_id, rest = record.key.split("/", 2)
            budget = self.config.budgets.get(record.key)
            if budget is None:
                await self.redis.hdel(self.layout.budgets(org_id), rest)
            else:
                field_name, value = encode_budget(budget)
                await self.redis.hset(self.layout.budgets(org_id), field_name, value)
        elif record.kind == "org":
            org_id = record.key.split("/", 1)[1]
            org = self.config.orgs.get(org_id)
            if org is not None:
                settings: dict[Any, Any] = dict(org.settings())
                if self.state_restored is None or await self.state_restored():
                    settings["loaded"] = f"{partition}:{offset}"  # on a Redis that lost its state, the restore does it
                await self.redis.hset(self.layout.org_settings(org_id), mapping=settings)
        self.metrics.config_records.labels(record.kind).inc()
        row = ConfigAuditRow(
            record.key, record.kind, (record.value or b"").decode(), int(record.value is None), partition, offset
        )
        await asyncio.to_thread(self.store.insert, CONFIG_AUDIT, [row])
