"""Reservation estimates: the prompt's known cost plus an expected output learned from traffic.

A reservation at ``max_tokens`` blocks real traffic (most answers are far
shorter); one at zero lets concurrent requests race past the cap. The
estimator holds, per model and feature, the output sizes of recent requests
and reserves at a configurable percentile of them (p95 by default), falling
back to ``max_tokens`` (or ``default_max_output``) until it has seen
``min_samples`` requests. Pure: fed by whoever sees usage events.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from schemas.pricing import PriceCatalogue, TierPrices, UnpricedPolicy

__all__ = ["Estimator", "OutputSizes"]

_NANOS = Decimal(1_000_000_000)


class OutputSizes:
    """Bounded windows of recent output token counts per (model, feature)."""

    def __init__(self, window: int = 512, percentile: float = 0.95, min_samples: int = 20) -> None:
        if not 0 < percentile <= 1:
            raise ValueError("percentile must be in (0, 1]")
        self.window = window
        self.percentile = percentile
        self.min_samples = min_samples
        self._seen: dict[tuple[str, str], deque[int]] = {}
        self._sorted: dict[tuple[str, str], list[int] | None] = {}

    def observe(self, model: str, feature: str, output_tokens: int) -> None:
        key = (model, feature)
        window = self._seen.get(key)
        if window is None:
            window = self._seen[key] = deque(maxlen=self.window)
        window.append(output_tokens)
        self._sorted[key] = None

    def expected(self, model: str, feature: str) -> int | None:
        """The percentile of recent outputs, or None before ``min_samples``."""
        key = (model, feature)
        window = self._seen.get(key)
        if window is None or len(window) < self.min_samples:
            return None
        ordered = self._sorted.get(key)
        if ordered is None:
            ordered = self._sorted[key] = sorted(window)
        return ordered[min(len(ordered) - 1, math.ceil(self.percentile * len(ordered)) - 1)]


class Estimator:
    def __init__(
        self, catalogue: PriceCatalogue, outputs: OutputSizes | None = None, default_max_output: int = 4096
    ) -> None:
        self.catalogue = catalogue
        self.outputs = outputs or OutputSizes()
        self.default_max_output = default_max_output

    def output_tokens(self, model: str, feature: str, max_tokens: int | None) -> int:
        learned = self.outputs.expected(model, feature)
        cap = max_tokens if max_tokens is not None else self.default_max_output
        return cap if learned is None else min(learned, cap)

    def estimate(
        self,
        provider: str,
        model: str,
        feature: str,
        prompt_tokens: int,
        max_tokens: int | None,
        at: datetime,
        org_id: str | None = None,
    ) -> int | None:
        """nano-USD to reserve, rounded up (an estimate errs towards the cap, never past it); None when the
        model has no price, which the cap client refuses under a hard cap unless the org allows it."""
        if prompt_tokens < 0 or (max_tokens is not None and max_tokens < 0):
            raise ValueError("token counts must be >= 0")
        entry = self.catalogue.lookup(provider, model, at)
        if entry is None and self.catalogue.unpriced_policy is UnpricedPolicy.FALLBACK and self.catalogue.fallback:
            entry = self.catalogue.lookup(*self.catalogue.fallback, at)
        if entry is None:
            return None
        output = self.output_tokens(model, feature, max_tokens)
        prices = TierPrices(entry.prices, entry.above, entry.inclusive).for_prompt(prompt_tokens)
        usd = prompt_tokens * prices.input + output * prices.output
        discount = self.catalogue.discounts.get(org_id or "")
        if discount:
            usd *= 1 - discount
        return int((usd * _NANOS).to_integral_value(rounding=ROUND_CEILING))
