"""The worker notices a Redis that lost its state, and restores it before it counts again.

Redis keeps the caps' state in its append-only file, but a restart may lose its last second, and a
lost volume loses everything. The marker ``<prefix>:state`` records the Redis process (its
``run_id``) whose state was last restored; every org's settings hash carries ``loaded`` once its
config and counters are in place. The worker checks both every second, and the settle script refuses
an org whose state is not loaded. Either way the worker then

1. stops applying usage (nothing is committed meanwhile) and lets its ClickHouse insert under way
   finish, holding the next;
2. rebuilds from config.v1 and ClickHouse exactly as ``spendstream rebuild`` does: first the alert
   ledger and the caps (proxies enforce again from here), then the watermarks and the duplicate
   window. With several workers, one rebuilds (a lock in Redis) and the others wait for the marker;
3. counts again the events it applied whose rows are not in ClickHouse yet (the rebuild could not see
   them), then resumes.

The time from noticing to caps enforced, and to the end, goes to ``spendstream_redis_recovery_seconds``
and the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from enforcement.keys import UNCONFIGURED, KeyLayout
from enforcement.redis_clients import all_nodes, run_id, sync_redis
from schemas.budgets import OrgConfig
from schemas.settings import Settings
from sinks.usage_store import UsageStore
from streams.metrics import WorkerMetrics
from streams.rebuild import RebuildReport, mark_restored, rebuild_with, text_of

__all__ = ["Recovery", "mark_restored", "restored"]

log = logging.getLogger("spendstream.recovery")

LOCK_TTL_S = 300


async def restored(client: aioredis.Redis, layout: KeyLayout) -> tuple[bool, str]:
    """Whether the running Redis holds restored state, and its run_id."""
    marker = await client.hget(layout.state(), "run_id")
    serving = run_id(await client.info("server", **all_nodes(client)))
    return marker is not None and text_of(marker) == serving, serving


class Recovery:
    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        layout: KeyLayout,
        metrics: WorkerMetrics,
        hold_flushes: Callable[[], Any],
        reapply: Callable[[], Awaitable[int]],
        on_restored: Callable[[], None] = lambda: None,
        open_gate: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.redis = client
        self.layout = layout
        self.metrics = metrics
        self.hold_flushes = hold_flushes  # an async context manager: no ClickHouse insert while held
        self.reapply = reapply
        self.on_restored = on_restored
        self.open = open_gate or asyncio.Event()  # set while usage may be applied (the pipeline waits on it)
        self.open.set()
        self._lock = asyncio.Lock()

    async def check(self) -> None:
        """The timer's check: restore when this Redis process's state is not marked restored."""
        ok, _ = await restored(self.redis, self.layout)
        if not ok:
            await self.recover("the state marker is missing or names another Redis process")

    async def org_not_loaded(self, org_id: str, config: OrgConfig | None) -> None:
        """The settle script found an org without its ``loaded`` mark: Redis lost its state, or the org
        has no config at all (then its defaults are written and marked, there is nothing to restore)."""
        ok, _ = await restored(self.redis, self.layout)
        if not ok:
            await self.recover(f"org {org_id}'s state is not loaded")
            return
        # "unconfigured" tells the cap client that no one configured the org (its unknown_orgs applies)
        loaded = UNCONFIGURED if config is None else "default"
        settings: dict[Any, Any] = {**(config or OrgConfig(org_id)).settings(), "loaded": loaded}
        key = self.layout.org_settings(org_id)
        if not await self.redis.hexists(key, "loaded"):
            await self.redis.hset(key, mapping=settings)
            log.info("org %s has no config: its defaults are in Redis now", org_id)

    async def recover(self, reason: str) -> None:
        async with self._lock:
            if (await restored(self.redis, self.layout))[0]:
                return  # restored meanwhile
            self.open.clear()
            began = time.perf_counter()
            log.warning("Redis lost its state (%s): usage waits while it is restored", reason)
            try:
                async with self.hold_flushes():
                    report = await self._rebuild_or_wait(began)
                    counted = await self.reapply()
                total = time.perf_counter() - began
                self.metrics.recoveries.inc()
                self.metrics.recovery_seconds.labels("all").set(total)
                self.on_restored()
                log.warning(
                    "Redis state restored in %.2f s (caps enforced after %.2f s): %s; %d events not yet in "
                    "ClickHouse counted again",
                    total,
                    report.caps_s if report else total,
                    "rebuilt here" if report else "rebuilt by another worker",
                    counted,
                )
            finally:
                self.open.set()

    async def _rebuild_or_wait(self, began: float) -> RebuildReport | None:
        sync = self._sync_client()
        try:
            if await asyncio.to_thread(sync.set, self.layout.state_lock(), "1", nx=True, ex=LOCK_TTL_S):
                store = UsageStore.of(self.settings.clickhouse)

                def caps_enforced() -> None:
                    self.metrics.recovery_seconds.labels("caps").set(time.perf_counter() - began)

                try:
                    report = await asyncio.to_thread(
                        rebuild_with, self.settings, sync, store, None, log.info, caps_enforced
                    )
                    await asyncio.to_thread(mark_restored, sync, self.layout, report)
                finally:
                    store.reset()
                    await asyncio.to_thread(sync.delete, self.layout.state_lock())
                return report
            deadline = time.monotonic() + LOCK_TTL_S
            while not (await restored(self.redis, self.layout))[0]:
                if time.monotonic() > deadline:
                    raise TimeoutError("another worker's rebuild did not finish")
                await asyncio.sleep(0.2)
            self.metrics.recovery_seconds.labels("caps").set(time.perf_counter() - began)
            return None
        finally:
            sync.close()

    def _sync_client(self) -> Any:
        return sync_redis(self.settings.redis)
