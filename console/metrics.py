"""The console's Prometheus metrics: server time per page and API call, and sign-in outcomes."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

__all__ = ["ConsoleMetrics"]


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.seconds = Histogram(
            "spendstream_console_request_seconds",
            "Server time of console pages and admin API calls, by handler",
            ["handler"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5),
            registry=registry,
        )
        self.sign_ins = Counter(
            "spendstream_console_sign_ins",
            "Console sign-ins by outcome: ok, failed, throttled, sso_only (a password where single sign-on is "
            "required); through an identity provider: sso_ok, sso_refused",
            ["outcome"],
            registry=registry,
        )

    def observe(self, handler: str, began: float) -> None:
        self.seconds.labels(handler).observe(time.perf_counter() - began)
