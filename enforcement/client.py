"""The cap client that proxies embed: ``reserve`` before a request, ``release`` if it does not run.

A request's actual cost is never written here: the proxy sends its UsageEvent (with the
reservation's ``request_id``) to ``usage.v1``, and the stream worker settles the reservation
from it, so every cost reaches Redis, ClickHouse and the alerts by one path.

One core (:class:`_Core`) holds every decision rule; :class:`CapClient` (sync,
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
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from enforcement import core
from enforcement.connect import redis_async, redis_sync
from enforcement.decision import Decision, Outcome
from enforcement.keys import KeyLayout, PeriodKeys, Subject
from enforcement.metrics import CapMetrics
from enforcement.pipelined import PipelinedRedis
from enforcement.scripts import RELEASE, RESERVE
from schemas.alerts import Denial, encode_denial

__all__ = ["AsyncCapClient", "CapClient", "CapUnavailableError"]

# Anything Redis can answer instead of a result: unreachable, timed out, READONLY, OOM, MOVED, ...
_UNAVAILABLE = (RedisError, OSError)
DEFAULT_MIN_ESTIMATE_NANOS = 1_000  # as schemas.budgets, which this module does not import (no pydantic, no yaml)


class CapUnavailableError(RuntimeError):
    """Redis could not answer a release or a spend read; the caller must retry."""


@dataclass(slots=True)
class _OrgEntry:
    timezone: str
    policy: str
    fetched_at: float
    min_estimate: int = DEFAULT_MIN_ESTIMATE_NANOS
    unpriced_models: str = "deny"

    def estimate(self, estimate: int | None) -> tuple[int, bool]:
        """The estimate to hold (never below the floor), and whether the model has no price and must be
        refused under a hard cap."""
        if estimate is None:
            return self.min_estimate, self.unpriced_models != "allow"
        core.check_amount("estimate", estimate, core.MAX_ESTIMATE_NANOS)  # a bad estimate is refused, not floored
        return max(estimate, self.min_estimate), False


class _Core:
    def __init__(
        self,
        layout: KeyLayout,
        reservation_ttl_s: float,
        default_policy: str,
        org_cache_s: float,
        metrics: CapMetrics,
    ) -> None:
        if default_policy not in ("closed", "open"):
            raise ValueError("on_redis_unavailable must be 'closed' or 'open'")
        self.layout = layout
        self.ttl_ms = int(reservation_ttl_s * 1000)
        self.default_policy = default_policy
        self.org_cache_s = org_cache_s
        self.metrics = metrics
        self._orgs: dict[str, _OrgEntry] = {}
        self._periods: dict[str, PeriodKeys] = {}
        self._reserve_keys: dict[str, tuple[PeriodKeys, list[str]]] = {}  # org -> its periods and reserve keys
        self._reserve_latency = metrics.latency.labels("reserve")  # a labelled child costs a lookup each time
        self._by_outcome = {outcome: metrics.decisions.labels(outcome.value) for outcome in Outcome}

    def cached_org(self, org_id: str) -> _OrgEntry | None:
        entry = self._orgs.get(org_id)
        if entry is None or time.monotonic() - entry.fetched_at > self.org_cache_s:
            return None
        return entry

    def remember_org(self, org_id: str, raw: dict[Any, Any]) -> _OrgEntry:
        values = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        try:
            floor = int(values.get("min_estimate_nanos", DEFAULT_MIN_ESTIMATE_NANOS))
        except ValueError:
            floor = DEFAULT_MIN_ESTIMATE_NANOS
        entry = _OrgEntry(
            values.get("tz", "UTC"),
            values.get("on_redis_unavailable", self.default_policy),
            time.monotonic(),
            floor,
            values.get("unpriced_models", "deny"),
        )
        self._orgs[org_id] = entry
        return entry

    def periods(self, timezone: str, when: datetime | None = None) -> PeriodKeys:
        if when is not None:
            return PeriodKeys.at(when, timezone)
        now = datetime.now(UTC)
        cached = self._periods.get(timezone)
        if cached is None or now.timestamp() * 1000 >= cached.day_end_ms:
            cached = self._periods[timezone] = PeriodKeys.at(now, timezone)
        return cached

    def reserve_call(
        self, org: _OrgEntry, subject: Subject, request_id: str, estimate: int | None
    ) -> tuple[core.ScriptCall, int, PeriodKeys]:
        """The script call, the amount it holds, and the periods it reads."""
        periods = self.periods(org.timezone)
        amount, unpriced = org.estimate(estimate)
        org_id = subject.org_id
        kept = self._reserve_keys.get(org_id)
        if kept is None or kept[0] is not periods:  # the org's first call, or a period turned
            kept = self._reserve_keys[org_id] = (periods, core.reserve_keys(self.layout, org_id, periods))
        call = core.reserve_call(self.layout, subject, request_id, amount, self.ttl_ms, periods, unpriced, kept[1])
        return call, amount, periods

    def unavailable(self, org_id: str, request_id: str, estimate: int | None, exc: BaseException) -> Decision:
        entry = self._orgs.get(org_id)
        policy = entry.policy if entry else self.default_policy
        self.metrics.redis_errors.labels("reserve").inc()
        amount = estimate or 0
        what = f"Redis unavailable ({exc.__class__.__name__}: {str(exc)[:120]})"
        if policy == "open":
            self.metrics.decisions.labels(Outcome.FAIL_OPEN.value).inc()
            return Decision(True, Outcome.FAIL_OPEN, f"caps not checked: {what}", request_id, amount)
        self.metrics.decisions.labels(Outcome.FAIL_CLOSED.value).inc()
        return Decision(
            False,
            Outcome.FAIL_CLOSED,
            f"denied: caps cannot be checked, {what}, and the org's policy is fail-closed",
            request_id,
            amount,
        )

    def not_loaded(self, org_id: str, request_id: str, estimate: int) -> Decision:
        """The org's cap state is not in Redis (lost with its data, or never applied): answer by the org's
        policy, never as "no budget applies"."""
        self.metrics.state_not_loaded.inc()
        entry = self._orgs.get(org_id)
        self._orgs.pop(org_id, None)  # read the org's settings again once its state is back
        policy = entry.policy if entry else self.default_policy
        what = f"the cap state of org {org_id} is not loaded in Redis (it is being restored, or was never applied)"
        if policy == "open":
            self.metrics.decisions.labels(Outcome.FAIL_OPEN.value).inc()
            return Decision(True, Outcome.FAIL_OPEN, f"caps not checked: {what}", request_id, estimate)
        self.metrics.decisions.labels(Outcome.FAIL_CLOSED.value).inc()
        return Decision(
            False, Outcome.FAIL_CLOSED, f"denied: {what}; the org's policy is fail-closed", request_id, estimate
        )

    def decided(self, decision: Decision, expired: int, began: float) -> Decision:
        self._reserve_latency.observe(time.perf_counter() - began)
        self._by_outcome[decision.outcome].inc()
        if decision.blocking is not None:
            self.metrics.denials.labels(decision.blocking.scope.split("/", 1)[0], decision.blocking.period).inc()
        if expired:
            self.metrics.expired.inc(expired)
        return decision

    def denial_mark(self, subject: Subject, decision: Decision, periods: PeriodKeys) -> tuple[str, int, bytes] | None:
        """For a denial by a budget: the once-per-period mark (key, seconds to live) and the denial it queues."""
        blocking = decision.blocking
        if decision.outcome is not Outcome.DENIED or blocking is None:
            return None
        period_key = periods.key(blocking.period)
        ttl = max(60, (blocking.resets_at_ms - int(time.time() * 1000)) // 1000 + 86_400)
        denial = Denial(
            org_id=subject.org_id,
            scope=blocking.scope,
            period=blocking.period,
            period_key=period_key,
            limit_nanos=blocking.limit,
            spent_nanos=blocking.spent,
            reserved_nanos=blocking.reserved,
            request_id=decision.request_id,
            estimate_nanos=decision.estimate,
            detected_at=datetime.now(UTC).isoformat(),
        )
        mark = self.layout.denied(subject.org_id, f"{blocking.scope}/{blocking.period}", period_key)
        return mark, ttl, encode_denial(denial)


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
    ) -> None:
        """``scripts``: what sends the reserve and release script calls, when not ``client`` (the async
        client's :class:`~enforcement.pipelined.PipelinedRedis`)."""
        self.redis = client
        self._core = _Core(
            KeyLayout(key_prefix), reservation_ttl_s, on_redis_unavailable, org_cache_s, metrics or CapMetrics.default()
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

    def _org(self, org_id: str) -> _OrgEntry:
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
            call, amount, periods = self._core.reserve_call(org, subject, request_id, estimate)
            reply = self._reserve(keys=call.keys, args=call.args)
        except _UNAVAILABLE as exc:
            return self._core.unavailable(subject.org_id, request_id, estimate, exc)
        decision = core.parse_reserve(reply, request_id, amount, periods)
        if decision is None:
            return self._core.not_loaded(subject.org_id, request_id, amount)
        mark = self._core.denial_mark(subject, decision, periods)
        if mark is not None:
            try:  # the first denial per budget and period becomes an alert; a failure here denies nothing more
                if self.redis.set(mark[0], 1, nx=True, ex=mark[1]):
                    self.redis.rpush(self._core.layout.denials(), mark[2])
            except _UNAVAILABLE:
                self._core.metrics.redis_errors.labels("denial_mark").inc()
        return self._core.decided(decision, _expired(reply), began)

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

    async def _org(self, org_id: str) -> _OrgEntry:
        entry = self._core.cached_org(org_id)
        if entry is None:
            raw = await self.redis.hgetall(self._core.layout.org_settings(org_id))
            entry = self._core.remember_org(org_id, raw)
        return entry

    async def reserve(self, subject: Subject, request_id: str, estimate: int | None) -> Decision:
        began = time.perf_counter()
        try:
            org = await self._org(subject.org_id)
            call, amount, periods = self._core.reserve_call(org, subject, request_id, estimate)
            reply = await self._reserve(keys=call.keys, args=call.args)
        except _UNAVAILABLE as exc:
            return self._core.unavailable(subject.org_id, request_id, estimate, exc)
        decision = core.parse_reserve(reply, request_id, amount, periods)
        if decision is None:
            return self._core.not_loaded(subject.org_id, request_id, amount)
        mark = self._core.denial_mark(subject, decision, periods)
        if mark is not None:
            try:
                if await self.redis.set(mark[0], 1, nx=True, ex=mark[1]):
                    await self.redis.rpush(self._core.layout.denials(), mark[2])
            except _UNAVAILABLE:
                self._core.metrics.redis_errors.labels("denial_mark").inc()
        return self._core.decided(decision, _expired(reply), began)

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
