"""Which deliveries an alert makes, and the rules each obeys. Pure.

* :func:`plan` turns an alert into deliveries (one per channel and target):
  the budget's route for the stage or kind, else the org's routing for the
  kind, else the org's default. A resolution goes to the channels named on it.
* :class:`TokenBucket` is a channel's rate limit.
* :func:`delivery_digest` names a delivery for the ledger that keeps it once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from schemas.alerts import Alert, BudgetStage, Resolved, Severity, severity_of
from schemas.budgets import Budget, Period, period_key
from schemas.channels import ChannelSpec, Routing

__all__ = ["Delivery", "Plan", "TokenBucket", "budget_of", "delivery_digest", "plan", "quiet"]


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: ChannelSpec
    target: str

    @property
    def label(self) -> str:
        return self.channel.shown(self.target)


@dataclass(frozen=True, slots=True)
class Plan:
    deliveries: tuple[Delivery, ...]
    missing: tuple[str, ...] = field(default=())  # channel names routed to but not configured


def budget_of(alert: Alert, budgets: Mapping[str, Budget]) -> Budget | None:
    """The budget an alert is about: its scope (``<kind>/<id>``) in its period."""
    if isinstance(alert, Resolved) or not alert.period:
        return None
    return budgets.get(f"budget/{alert.org_id}/{alert.scope}/{alert.period}")


def _names(alert: Alert, budget: Budget | None, routing: Routing | None) -> tuple[str, ...]:
    if alert.channels is not None:
        return tuple(alert.channels)
    if budget is not None:
        route = str(alert.stage) if isinstance(alert, BudgetStage) else alert.kind
        if route in budget.alerts:
            return budget.alerts[route]
    if routing is not None:
        return routing.channels_for(alert.kind)
    return ()


def plan(
    alert: Alert,
    budgets: Mapping[str, Budget],
    channels: Mapping[tuple[str, str], ChannelSpec],
    routing: Mapping[str, Routing],
) -> Plan:
    names = _names(alert, budget_of(alert, budgets), routing.get(alert.org_id))
    deliveries: list[Delivery] = []
    missing: list[str] = []
    for name in dict.fromkeys(names):
        spec = channels.get((alert.org_id, name))
        if spec is None:
            missing.append(name)
            continue
        deliveries.extend(Delivery(spec, target) for target in spec.targets)
    return Plan(tuple(deliveries), tuple(missing))


def quiet(alert: Alert, channel: ChannelSpec, at: datetime) -> bool:
    """True when the channel is in its quiet hours and the alert is not critical (critical always goes)."""
    if channel.quiet_hours is None:
        return False
    return severity_of(alert) is not Severity.CRITICAL and channel.quiet_hours.contains(at)


def of_closed_period(alert: Alert, timezone: str) -> bool:
    """True for a budget stage crossed in a period that had ended when the event that crossed it was
    applied (a backfill of last month, a late event): worth recording, not worth waking anyone for."""
    if not isinstance(alert, BudgetStage) or not alert.period or not alert.period_key:
        return False
    try:
        applied = datetime.fromisoformat(alert.detected_at)
        current = period_key(applied, Period(alert.period), timezone)
    except ValueError:
        return False
    return alert.period_key < current  # period keys sort in time: 2026-10 < 2026-11, 2026-W09 < 2026-W10


def delivery_digest(dedup_key: str, channel: ChannelSpec, target: str) -> str:
    text = f"{dedup_key}|{channel.name}|{target}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class TokenBucket:
    """``rate_per_minute`` tokens a minute, bursting up to the same number."""

    def __init__(self, rate_per_minute: int, now: float) -> None:
        self.capacity = float(rate_per_minute)
        self.rate = rate_per_minute / 60.0
        self.tokens = self.capacity
        self.at = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
