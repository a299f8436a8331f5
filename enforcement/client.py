"""The cap client that proxies embed: ``reserve`` before a request, ``settle`` or ``release`` after.

One core (:class:`_Core`) holds every decision rule; :class:`CapClient` (sync,
``redis.Redis``) and :class:`AsyncCapClient` (``redis.asyncio.Redis``) only
send its script calls to Redis. Each call is one ``EVALSHA`` round trip
(plus one ``HGETALL`` per org every ``org_cache_s`` for its time zone). The
first denial by a budget in a period also sets a mark and queues that denial
for the worker, which turns it into a ``cap_denied`` alert.

When Redis cannot be reached in ``timeout_s``, ``reserve`` answers from the
org's policy: ``closed`` (the default) denies with a reason saying so,
``open`` admits and counts the request as failed open. ``settle`` and
``release`` raise instead: losing spend is never silent.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from enforcement import core
from enforcement.decision import Decision, Outcome, SettleResult
from enforcement.keys import KeyLayout, PeriodKeys, Subject
from enforcement.metrics import CapMetrics
from enforcement.scripts import RELEASE, RESERVE, SETTLE

__all__ = ["AsyncCapClient", "CapClient", "CapUnavailableError"]

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class CapUnavailableError(RuntimeError):
    """Redis could not be reached for a settle or release; the caller must retry."""


@dataclass(slots=True)
class _OrgEntry:
    timezone: str
    policy: str
    fetched_at: float


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
        entry = _OrgEntry(
            values.get("tz", "UTC"), values.get("on_redis_unavailable", self.default_policy), time.monotonic()
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

    def unavailable(self, org_id: str, request_id: str, estimate: int, exc: BaseException) -> Decision:
        entry = self._orgs.get(org_id)
        policy = entry.policy if entry else self.default_policy
        self.metrics.redis_errors.labels("reserve").inc()
        if policy == "open":
            self.metrics.decisions.labels(Outcome.FAIL_OPEN.value).inc()
            return Decision(
                True,
                Outcome.FAIL_OPEN,
                f"caps not checked: Redis unavailable ({exc.__class__.__name__})",
                request_id,
                estimate,
            )
        self.metrics.decisions.labels(Outcome.FAIL_CLOSED.value).inc()
        return Decision(
            False,
            Outcome.FAIL_CLOSED,
            f"denied: caps cannot be checked, Redis unavailable ({exc.__class__.__name__}) "
            "and the org's policy is fail-closed",
            request_id,
            estimate,
        )

    def decided(self, decision: Decision, expired: int, began: float) -> Decision:
        self.metrics.latency.labels("reserve").observe(time.perf_counter() - began)
        self.metrics.decisions.labels(decision.outcome.value).inc()
        if decision.blocking is not None:
            self.metrics.denials.labels(decision.blocking.scope.split("/", 1)[0], decision.blocking.period).inc()
        if expired:
            self.metrics.expired.inc(expired)
        return decision

    def denial_mark(self, subject: Subject, decision: Decision, periods: PeriodKeys) -> tuple[str, int, str] | None:
        """For a denial by a budget: the once-per-period mark (key, seconds to live) and the alert it queues."""
        blocking = decision.blocking
        if decision.outcome is not Outcome.DENIED or blocking is None:
            return None
        period_key = {"daily": periods.day, "weekly": periods.week}.get(blocking.period, periods.month)
        field = f"{blocking.scope}/{blocking.period}"
        ttl = max(60, (blocking.resets_at_ms - int(time.time() * 1000)) // 1000 + 86_400)
        body = {
            "org_id": subject.org_id,
            "scope": field,
            "period": blocking.period,
            "period_key": period_key,
            "limit_nanos": blocking.limit,
            "spent_nanos": blocking.spent,
            "reserved_nanos": blocking.reserved,
            "request_id": decision.request_id,
            "estimate_nanos": decision.estimate,
            "detected_at": datetime.now(UTC).isoformat(),
        }
        return self.layout.denied(subject.org_id, field, period_key), ttl, json.dumps(body)

    def settled(self, result: SettleResult, began: float) -> SettleResult:
        self.metrics.latency.labels("settle").observe(time.perf_counter() - began)
        label = "applied" if result.applied else ("duplicate" if result.duplicate else "stale")
        self.metrics.settles.labels(label).inc()
        return result


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
    ) -> None:
        self.redis = client
        self._core = _Core(
            KeyLayout(key_prefix), reservation_ttl_s, on_redis_unavailable, org_cache_s, metrics or CapMetrics.default()
        )
        self._reserve = client.register_script(RESERVE)
        self._settle = client.register_script(SETTLE)
        self._release = client.register_script(RELEASE)

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
    def from_url(cls, url: str, *, timeout_s: float = 0.25, password: str | None = None, **kwargs: Any) -> CapClient:
        client = redis.Redis.from_url(
            url, password=password, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
        )
        return cls(client, **kwargs)

    def _org(self, org_id: str) -> _OrgEntry:
        entry = self._core.cached_org(org_id)
        if entry is None:
            entry = self._core.remember_org(org_id, self.redis.hgetall(self._core.layout.org_settings(org_id)))
        return entry

    def reserve(self, subject: Subject, request_id: str, estimate: int) -> Decision:
        """Admit the request if every hard cap of ``subject`` has room for ``estimate`` nano-USD, and hold it."""
        began = time.perf_counter()
        try:
            periods = self._core.periods(self._org(subject.org_id).timezone)
            call = core.reserve_call(self._core.layout, subject, request_id, estimate, self._core.ttl_ms, periods)
            reply = self._reserve(keys=call.keys, args=call.args)
        except _UNAVAILABLE as exc:
            return self._core.unavailable(subject.org_id, request_id, estimate, exc)
        decision = core.parse_reserve(reply, request_id, estimate, periods)
        mark = self._core.denial_mark(subject, decision, periods)
        if mark is not None:
            try:  # the first denial per budget and period becomes an alert; a failure here denies nothing more
                if self.redis.set(mark[0], 1, nx=True, ex=mark[1]):
                    self.redis.rpush(self._core.layout.denials(), mark[2])
            except _UNAVAILABLE:
                self._core.metrics.redis_errors.labels("denial_mark").inc()
        return self._core.decided(decision, _expired(reply), began)

    def settle(
        self,
        subject: Subject,
        event_id: str,
        cost: int,
        *,
        request_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> SettleResult:
        """Record the actual cost once (by ``event_id``), replacing the reservation of ``request_id``."""
        began = time.perf_counter()
        when = occurred_at or datetime.now(UTC)
        try:
            periods = self._core.periods(self._org(subject.org_id).timezone, when)
            call = core.settle_call(self._core.layout, subject, event_id, when, cost, periods, request_id)
            reply = self._settle(keys=call.keys, args=call.args)
        except _UNAVAILABLE as exc:
            self._core.metrics.redis_errors.labels("settle").inc()
            raise CapUnavailableError(f"settle of {event_id} not recorded: {exc}") from exc
        return self._core.settled(core.parse_settle(reply), began)

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
        cls, url: str, *, timeout_s: float = 0.25, password: str | None = None, **kwargs: Any
    ) -> AsyncCapClient:
        client = aioredis.Redis.from_url(
            url, password=password, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
        )
        return cls(client, **kwargs)

    async def _org(self, org_id: str) -> _OrgEntry:
        entry = self._core.cached_org(org_id)
        if entry is None:
            raw = await self.redis.hgetall(self._core.layout.org_settings(org_id))
            entry = self._core.remember_org(org_id, raw)
        return entry

    async def reserve(self, subject: Subject, request_id: str, estimate: int) -> Decision:
        began = time.perf_counter()
        try:
            periods = self._core.periods((await self._org(subject.org_id)).timezone)
            call = core.reserve_call(self._core.layout, subject, request_id, estimate, self._core.ttl_ms, periods)
            reply = await self._reserve(keys=call.keys, args=call.args)
        except _UNAVAILABLE as exc:
            return self._core.unavailable(subject.org_id, request_id, estimate, exc)
        decision = core.parse_reserve(reply, request_id, estimate, periods)
        mark = self._core.denial_mark(subject, decision, periods)
        if mark is not None:
            try:
                if await self.redis.set(mark[0], 1, nx=True, ex=mark[1]):
                    await self.redis.rpush(self._core.layout.denials(), mark[2])
            except _UNAVAILABLE:
                self._core.metrics.redis_errors.labels("denial_mark").inc()
        return self._core.decided(decision, _expired(reply), began)

    async def settle(
        self,
        subject: Subject,
        event_id: str,
        cost: int,
        *,
        request_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> SettleResult:
        began = time.perf_counter()
        when = occurred_at or datetime.now(UTC)
        try:
            periods = self._core.periods((await self._org(subject.org_id)).timezone, when)
            call = core.settle_call(self._core.layout, subject, event_id, when, cost, periods, request_id)
            reply = await self._settle(keys=call.keys, args=call.args)
        except _UNAVAILABLE as exc:
            self._core.metrics.redis_errors.labels("settle").inc()
            raise CapUnavailableError(f"settle of {event_id} not recorded: {exc}") from exc
        return self._core.settled(core.parse_settle(reply), began)

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
