"""The cap client that proxies embed: ``reserve`` before a request, ``release`` if it does not run.

A request's actual cost is never written here: the proxy sends its UsageEvent (with the
reservation's ``request_id``) to ``usage.v1``, and the stream worker settles the reservation
from it, so every cost reaches Redis, ClickHouse and the alerts by one path.

One core (:class:`~enforcement.client_core.ClientCore`) holds every decision rule; :class:`CapClient` (sync,
``redis.Redis``) and :class:`AsyncCapClient` (``redis.asyncio.Redis``) only
send its script calls to Redis (the async one pipelines them on one connection,
:mod:`enforcement.pipelined`). Each call is one ``EVALSHA`` round trip
(plus one ``HGETALL`` per org every ``org_cache_s`` for its settings). The
first denial by a budget in a period also sets a mark and queues that denial
for the worker, which turns it into a ``cap_denied`` alert.

An estimate is never below the org's ``min_estimate_nanos``; an estimate of ``None`` (the model
has no price) is refused wherever a hard cap applies unless the org's ``unpriced_models`` is
``allow``. When Redis cannot answer (unreachable in ``timeout_s``, read-only, out of memory, a
cluster redirect: any Redis error), ``reserve`` answers from the org's policy: ``closed`` (the
default) denies with a reason saying so, ``open`` admits and counts the request as failed open.
``release`` and ``spend`` raise :class:`CapUnavailableError` instead.

An org whose cap state is not in Redis is one of two things, told apart by Redis's restore marker
(``<prefix>:state``, the Redis process whose state the worker last restored): when the marker names the
Redis serving now, its state is whole and the org was never configured, so no budget applies and the
request is admitted and counted (``unknown_orgs: deny`` refuses it instead, saying why); otherwise the
state was lost and the org's policy answers (``closed`` by default), never "no budget applies". The
marker is read at every such decision (a Redis that lost its data lost it too); the serving process's
``run_id`` (``INFO``, every node of a Cluster) is kept for ``STATE_CHECK_S``: a restart in between reads
as lost state, the safe side.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from enforcement import core
from enforcement.client_core import ClientCore, OrgEntry
from enforcement.decision import Decision
from enforcement.keys import KeyLayout, PeriodKeys
from enforcement.metrics import CapMetrics
from enforcement.pipelined import PipelinedRedis
from enforcement.redis_clients import all_nodes, redis_async, redis_sync
from enforcement.scripts import RELEASE, RESERVE
from enforcement.subject import Subject

__all__ = ["AsyncCapClient", "CapClient", "CapUnavailableError"]

# Anything Redis can answer instead of a result: unreachable, timed out, READONLY, OOM, MOVED, ...
_UNAVAILABLE = (RedisError, OSError)


class CapUnavailableError(RuntimeError):
    """Redis could not answer a release or a spend read; the caller must retry."""


def _expired(reply: list[Any]) -> int:
    return int(reply[2])


class _Adapter:
    """What both adapters share: the core, and the scripts registered once on their Redis client."""

    def __init__(
        self,
        client: Any,
        *,
        key_prefix: str = "ss",
        reservation_ttl_s: float = 300.0,
        on_redis_unavailable: str = "closed",
        org_cache_s: float = 30.0,
        metrics: CapMetrics | None = None,
        scripts: Any = None,
        unknown_orgs: str = "admit",
    ) -> None:
        """``scripts``: what sends the reserve and release script calls, when not ``client`` (the async
        client's :class:`~enforcement.pipelined.PipelinedRedis`). ``unknown_orgs``: ``admit`` (counted, no
        budget applies) or ``deny`` an org nobody configured."""
        self.redis = client
        self._core = ClientCore(
            KeyLayout(key_prefix),
            reservation_ttl_s,
            on_redis_unavailable,
            org_cache_s,
            metrics or CapMetrics.default(),
            unknown_orgs,
        )
        self._scripts = client if scripts is None else scripts
        self._reserve = self._scripts.register_script(RESERVE)
        self._release = self._scripts.register_script(RELEASE)

    @property
    def layout(self) -> KeyLayout:
        return self._core.layout

    def _spend_pipeline(self, org_id: str, scope: str, periods: PeriodKeys) -> Any:
        pipe = self.redis.pipeline(transaction=False)
        for key in self._core.layout.spent(org_id, periods):
            pipe.hget(key, scope)
        pipe.hget(self._core.layout.reserved(org_id), scope)
        return pipe


def _spend(values: list[Any]) -> dict[str, int]:
    daily, weekly, monthly, reserved = (int(v or 0) for v in values)
    return {"daily": daily, "weekly": weekly, "monthly": monthly, "reserved": reserved}


class CapClient(_Adapter):
    """Synchronous cap client over ``redis.Redis``."""

    @classmethod
    def from_url(
        cls, url: str, *, timeout_s: float = 0.25, password: str | None = None, cluster: bool = False, **kwargs: Any
    ) -> CapClient:
        """``cluster``: the URL names a node of a Redis Cluster."""
        client = redis_sync(
            url,
            password=password,
            cluster=cluster,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        return cls(client, **kwargs)

    def _org(self, org_id: str) -> OrgEntry:
        entry = self._core.cached_org(org_id)
        if entry is None:
            entry = self._core.remember_org(org_id, self.redis.hgetall(self._core.layout.org_settings(org_id)))
        return entry

    def reserve(self, subject: Subject, request_id: str, estimate: int | None) -> Decision:
        """Admit the request if every hard cap of ``subject`` has room for ``estimate`` nano-USD, and hold it.

        ``estimate`` None means the model has no price (see the module's notes)."""
        began = time.perf_counter()
        try:
            org = self._org(subject.org_id)
            refused = self._core.refused_unknown(org, subject.org_id, request_id, estimate)
            if refused is not None:
                return refused
            call, amount, periods = self._core.reserve_call(org, subject, request_id, estimate)
            reply = self._reserve(keys=call.keys, args=call.args)
        except _UNAVAILABLE as exc:
            return self._core.unavailable(subject.org_id, request_id, estimate, exc)
        decision = core.parse_reserve(reply, request_id, amount, periods)
        if decision is None:
            try:
                whole = self._state_whole()
            except _UNAVAILABLE as exc:
                return self._core.unavailable(subject.org_id, request_id, estimate, exc)
            return self._core.not_loaded(subject.org_id, request_id, amount, whole)
        mark = self._core.denial_mark(subject, decision, periods)
        if mark is not None:
            try:  # the first denial per budget and period becomes an alert; a failure here denies nothing more
                if self.redis.set(mark[0], 1, nx=True, ex=mark[1]):
                    self.redis.rpush(self._core.layout.denials(), mark[2])
            except _UNAVAILABLE:
                self._core.metrics.redis_errors.labels("denial_mark").inc()
        return self._core.decided(decision, _expired(reply), began)

    def _state_whole(self) -> bool:
        marker = self.redis.hget(self._core.layout.state(), "run_id")
        serving = self._core.serving_known()
        if serving is None:
            serving = self._core.remember_serving(self.redis.info("server", **all_nodes(self.redis)))
        return self._core.whole(marker, serving)

    def release(self, org_id: str, request_id: str) -> bool:
        """Drop the reservation of a request that will not run. True when one was open."""
        call = core.release_call(self._core.layout, org_id, request_id)
        try:
            return bool(self._release(keys=call.keys, args=call.args))
        except _UNAVAILABLE as exc:
            self._core.metrics.redis_errors.labels("release").inc()
            raise CapUnavailableError(f"release of {request_id} failed: {exc}") from exc

    def spend(self, org_id: str, scope: str, when: datetime | None = None) -> dict[str, int]:
        """Committed nano-USD of one scope (``"<kind>/<id>"``) in its current day, week and month."""
        try:
            periods = self._core.periods(self._org(org_id).timezone, when)
            return _spend(self._spend_pipeline(org_id, scope, periods).execute())
        except _UNAVAILABLE as exc:
            raise CapUnavailableError(f"spend of {scope} not read: {exc}") from exc


class AsyncCapClient(_Adapter):
    """The same client over ``redis.asyncio.Redis``."""

    @classmethod
    def from_url(
        cls, url: str, *, timeout_s: float = 0.25, password: str | None = None, cluster: bool = False, **kwargs: Any
    ) -> AsyncCapClient:
        """On a standalone Redis the reserve and release calls are pipelined on one connection
        (:mod:`enforcement.pipelined`: a third of redis-py's CPU per call); a Cluster keeps redis-py's
        client for everything, as it routes each call by its slot."""
        client = redis_async(
            url,
            password=password,
            cluster=cluster,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        if not cluster:
            kwargs.setdefault("scripts", PipelinedRedis.from_url(url, password=password, timeout_s=timeout_s))
        return cls(client, **kwargs)

    async def aclose(self) -> None:
        """Close its connections: redis-py's client, and the pipelined one when it has one."""
        await self.redis.aclose()
        if isinstance(self._scripts, PipelinedRedis):
            await self._scripts.aclose()

    async def _org(self, org_id: str) -> OrgEntry:
        entry = self._core.cached_org(org_id)
        if entry is None:
            raw = await self.redis.hgetall(self._core.layout.org_settings(org_id))
            entry = self._core.remember_org(org_id, raw)
        return entry

    async def reserve(self, subject: Subject, request_id: str, estimate: int | None) -> Decision:
        began = time.perf_counter()
        try:
            org = await self._org(subject.org_id)
            refused = self._core.refused_unknown(org, subject.org_id, request_id, estimate)
            if refused is not None:
                return refused
            call, amount, periods = self._core.reserve_call(org, subject, request_id, estimate)
            reply = await self._reserve(keys=call.keys, args=call.args)
        except _UNAVAILABLE as exc:
            return self._core.unavailable(subject.org_id, request_id, estimate, exc)
        decision = core.parse_reserve(reply, request_id, amount, periods)
        if decision is None:
            try:
                whole = await self._state_whole()
            except _UNAVAILABLE as exc:
                return self._core.unavailable(subject.org_id, request_id, estimate, exc)
            return self._core.not_loaded(subject.org_id, request_id, amount, whole)
        mark = self._core.denial_mark(subject, decision, periods)
        if mark is not None:
            try:
                if await self.redis.set(mark[0], 1, nx=True, ex=mark[1]):
                    await self.redis.rpush(self._core.layout.denials(), mark[2])
            except _UNAVAILABLE:
                self._core.metrics.redis_errors.labels("denial_mark").inc()
        return self._core.decided(decision, _expired(reply), began)

    async def _state_whole(self) -> bool:
        marker = await self.redis.hget(self._core.layout.state(), "run_id")
        serving = self._core.serving_known()
        if serving is None:
            serving = self._core.remember_serving(await self.redis.info("server", **all_nodes(self.redis)))
        return self._core.whole(marker, serving)

    async def release(self, org_id: str, request_id: str) -> bool:
        call = core.release_call(self._core.layout, org_id, request_id)
        try:
            return bool(await self._release(keys=call.keys, args=call.args))
        except _UNAVAILABLE as exc:
            self._core.metrics.redis_errors.labels("release").inc()
            raise CapUnavailableError(f"release of {request_id} failed: {exc}") from exc

    async def spend(self, org_id: str, scope: str, when: datetime | None = None) -> dict[str, int]:
        try:
            periods = self._core.periods((await self._org(org_id)).timezone, when)
            return _spend(await self._spend_pipeline(org_id, scope, periods).execute())
        except _UNAVAILABLE as exc:
            raise CapUnavailableError(f"spend of {scope} not read: {exc}") from exc
