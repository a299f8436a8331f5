"""The cap client's rules, apart from its I/O: an org's settings as read from Redis (cached), the estimate a
reservation holds, how a decision is answered when Redis cannot answer or holds no state for the org (lost,
or an org no one configured), and the once-per-period denial mark. :mod:`enforcement.client`'s two
adapters, sync and async, send what this decides to Redis and nothing else."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from enforcement import core
from enforcement.decision import Decision, Outcome
from enforcement.keys import UNCONFIGURED, KeyLayout, PeriodKeys
from enforcement.metrics import CapMetrics
from enforcement.redis_clients import run_id
from enforcement.subject import Subject
from schemas.alerts import Denial, encode_denial

__all__ = ["DEFAULT_MIN_ESTIMATE_NANOS", "STATE_CHECK_S", "ClientCore", "OrgEntry"]

DEFAULT_MIN_ESTIMATE_NANOS = 1_000  # as schemas.budgets, which this module does not import (no pydantic, no yaml)
STATE_CHECK_S = 5.0  # how long the serving Redis's run_id is kept (only orgs not loaded ask for it)


@dataclass(slots=True)
class OrgEntry:
    timezone: str
    policy: str
    fetched_at: float
    min_estimate: int = DEFAULT_MIN_ESTIMATE_NANOS
    unpriced_models: str = "deny"
    unconfigured: bool = False  # the worker counts its spend, but no one configured it

    def estimate(self, estimate: int | None) -> tuple[int, bool]:
        """The estimate to hold (never below the floor), and whether the model has no price and must be
        refused under a hard cap."""
        if estimate is None:
            return self.min_estimate, self.unpriced_models != "allow"
        core.check_amount("estimate", estimate, core.MAX_ESTIMATE_NANOS)  # a bad estimate is refused, not floored
        return max(estimate, self.min_estimate), False


class ClientCore:
    def __init__(
        self,
        layout: KeyLayout,
        reservation_ttl_s: float,
        default_policy: str,
        org_cache_s: float,
        metrics: CapMetrics,
        unknown_orgs: str = "admit",
    ) -> None:
        if default_policy not in ("closed", "open"):
            raise ValueError("on_redis_unavailable must be 'closed' or 'open'")
        if unknown_orgs not in ("admit", "deny"):
            raise ValueError("unknown_orgs must be 'admit' or 'deny'")
        self.unknown_orgs = unknown_orgs
        self._serving: tuple[float, str] | None = None  # (when read, the run_id of the Redis serving)
        self.layout = layout
        self.ttl_ms = int(reservation_ttl_s * 1000)
        self.default_policy = default_policy
        self.org_cache_s = org_cache_s
        self.metrics = metrics
        self._orgs: dict[str, OrgEntry] = {}
        self._periods: dict[str, PeriodKeys] = {}
        self._reserve_keys: dict[str, tuple[PeriodKeys, list[str]]] = {}  # org -> its periods and reserve keys
        self._reserve_latency = metrics.latency.labels("reserve")  # a labelled child costs a lookup each time
        self._by_outcome = {outcome: metrics.decisions.labels(outcome.value) for outcome in Outcome}

    def cached_org(self, org_id: str) -> OrgEntry | None:
        entry = self._orgs.get(org_id)
        if entry is None or time.monotonic() - entry.fetched_at > self.org_cache_s:
            return None
        return entry

    def remember_org(self, org_id: str, raw: dict[Any, Any]) -> OrgEntry:
        values = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        try:
            floor = int(values.get("min_estimate_nanos", DEFAULT_MIN_ESTIMATE_NANOS))
        except ValueError:
            floor = DEFAULT_MIN_ESTIMATE_NANOS
        entry = OrgEntry(
            values.get("tz", "UTC"),
            values.get("on_redis_unavailable", self.default_policy),
            time.monotonic(),
            floor,
            values.get("unpriced_models", "deny"),
            values.get("loaded") == UNCONFIGURED,
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

    def refused_unknown(self, org: OrgEntry, org_id: str, request_id: str, estimate: int | None) -> Decision | None:
        """The denial of an org no one configured, when the operator refuses unknown orgs (else None)."""
        if not org.unconfigured or self.unknown_orgs != "deny":
            return None
        self.metrics.unconfigured.inc()
        self.metrics.decisions.labels(Outcome.UNKNOWN_ORG.value).inc()
        reason = f"denied: org {org_id} is not configured, and this deployment refuses unknown orgs"
        return Decision(False, Outcome.UNKNOWN_ORG, reason, request_id, estimate or 0)

    def reserve_call(
        self, org: OrgEntry, subject: Subject, request_id: str, estimate: int | None
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
        return self._by_policy(policy, what, f"caps cannot be checked, {what}, and", request_id, amount)

    def serving_known(self) -> str | None:
        """The kept run_id of the Redis serving, or None when ``INFO`` must be asked again."""
        if self._serving is None or time.monotonic() - self._serving[0] > STATE_CHECK_S:
            return None
        return self._serving[1]

    def remember_serving(self, info: Any) -> str:
        serving = run_id(info)
        self._serving = (time.monotonic(), serving)
        return serving

    @staticmethod
    def whole(marker: Any, serving: str) -> bool:
        """Whether the restore marker (``HGET <prefix>:state run_id``) names the Redis serving."""
        text = marker.decode() if isinstance(marker, bytes) else marker
        return text is not None and text == serving

    def not_loaded(self, org_id: str, request_id: str, estimate: int, whole: bool) -> Decision:
        """The org's cap state is not in Redis. ``whole``: Redis's state is whole, so the org was never
        configured: no budget applies (or the operator refuses unknown orgs). Otherwise its state was lost:
        answer by the org's policy, never as "no budget applies"."""
        entry = self._orgs.pop(org_id, None)  # read the org's settings again once its state is there
        if whole:
            self.metrics.unconfigured.inc()
            if self.unknown_orgs == "deny":
                self.metrics.decisions.labels(Outcome.UNKNOWN_ORG.value).inc()
                reason = f"denied: org {org_id} is not configured, and this deployment refuses unknown orgs"
                return Decision(False, Outcome.UNKNOWN_ORG, reason, request_id, estimate)
            self.metrics.decisions.labels(Outcome.UNCONFIGURED.value).inc()
            reason = f"admitted: org {org_id} has no budgets configured; its spend is counted"
            return Decision(True, Outcome.UNCONFIGURED, reason, request_id, estimate)
        self.metrics.state_not_loaded.inc()
        policy = entry.policy if entry else self.default_policy
        what = f"the cap state of org {org_id} is not loaded in Redis (Redis lost it, and it is being restored)"
        return self._by_policy(policy, what, f"{what};", request_id, estimate)

    def _by_policy(self, policy: str, what: str, denied: str, request_id: str, amount: int) -> Decision:
        """The org's answer when its caps cannot be checked: ``open`` admits (counted), else denied, saying why."""
        if policy == "open":
            self.metrics.decisions.labels(Outcome.FAIL_OPEN.value).inc()
            return Decision(True, Outcome.FAIL_OPEN, f"caps not checked: {what}", request_id, amount)
        self.metrics.decisions.labels(Outcome.FAIL_CLOSED.value).inc()
        return Decision(
            False, Outcome.FAIL_CLOSED, f"denied: {denied} the org's policy is fail-closed", request_id, amount
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
