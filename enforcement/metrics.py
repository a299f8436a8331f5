"""Prometheus metrics of the cap client, when ``prometheus_client`` is installed.

Proxies that embed the client with only ``redis`` installed get no-op metrics.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["CapMetrics"]

try:
    import prometheus_client as _prom
except ImportError:  # pragma: no cover - exercised by the redis-only install
    _prom = None  # type: ignore[assignment]


class _Noop:
    def labels(self, *args: str, **kwargs: str) -> _Noop:
        return self

    def inc(self, amount: float = 1) -> None:
        return None

    def observe(self, value: float) -> None:
        return None


class CapMetrics:
    """decisions by outcome, decision latency, Redis errors, lazily expired reservations."""

    _shared: ClassVar[dict[int, CapMetrics]] = {}

    def __init__(self, registry: Any = None) -> None:
        if _prom is None:
            self.decisions: Any = _Noop()
            self.latency: Any = _Noop()
            self.redis_errors: Any = _Noop()
            self.expired: Any = _Noop()
            self.denials: Any = _Noop()
            self.state_not_loaded: Any = _Noop()
            self.unconfigured: Any = _Noop()
            return
        registry = registry if registry is not None else _prom.REGISTRY
        self.decisions = _prom.Counter(
            "spendstream_cap_decisions", "Cap decisions by outcome", ["outcome"], registry=registry
        )
        self.latency = _prom.Histogram(
            "spendstream_cap_decision_duration_seconds",
            "Time for one reserve or release, Redis round trip included",
            ["operation"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=registry,
        )
        self.redis_errors = _prom.Counter(
            "spendstream_cap_redis_errors", "Redis calls that failed or timed out", ["operation"], registry=registry
        )
        self.expired = _prom.Counter(
            "spendstream_cap_reservations_expired", "Reservations released lazily after their TTL", registry=registry
        )
        self.state_not_loaded = _prom.Counter(
            "spendstream_cap_state_not_loaded",
            "Decisions taken by the org's policy because Redis lost the org's cap state",
            registry=registry,
        )
        self.unconfigured = _prom.Counter(
            "spendstream_cap_unconfigured_org",
            "Decisions for orgs nobody configured (no budget applies; unknown_orgs admits or denies)",
            registry=registry,
        )
        self.denials = _prom.Counter(
            "spendstream_cap_denials",
            "Denials by the kind of scope whose budget blocked (org, department, user...) and period",
            ["scope", "period"],
            registry=registry,
        )

    @classmethod
    def default(cls) -> CapMetrics:
        """One set per process on the default registry (a second client reuses it)."""
        key = 0
        if key not in cls._shared:
            cls._shared[key] = cls()
        return cls._shared[key]
