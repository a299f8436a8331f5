"""The alerts the usage stream raises beside budget stages: spend on a model without a catalogue price
(once per org, model and month) and spend of an org no one configured (once per org and UTC day). Each is
raised once per worker; its ``dedup_key`` keeps delivery to one per recipient across workers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bus.topics import Send
from enforcement.keys import PeriodKeys
from schemas.alerts import AlertKind, encode_alert, unconfigured_org_alert, unpriced_alert
from streams.metrics import WorkerMetrics
from streams.processing import Rated

__all__ = ["UsageAlerts"]


class UsageAlerts:
    def __init__(
        self, send: Send, topic: str, metrics: WorkerMetrics, periods_of: Callable[[str, datetime], PeriodKeys]
    ) -> None:
        self.send, self.topic, self.metrics, self.periods_of = send, topic, metrics, periods_of
        self._unpriced: set[tuple[str, str, str, str]] = set()  # (org, provider, model, month)
        self._unconfigured: set[tuple[str, str]] = set()  # (org, UTC day)

    def unconfigured(self, item: Rated, deliveries: list[Awaitable[None]]) -> None:
        """Spend of an org with no entry in config.v1: admitted, counted, no budget applies."""
        event = item.event
        self.metrics.unconfigured.inc()
        now = datetime.now(UTC)
        key = (event.org_id, f"{now:%Y-%m-%d}")
        if key in self._unconfigured:
            return
        self._unconfigured.add(key)
        alert = unconfigured_org_alert(event.org_id, key[1], event.event_id, now)
        deliveries.append(self.send(self.topic, event.org_id.encode(), encode_alert(alert), None))
        self.metrics.alerts.labels(AlertKind.UNCONFIGURED_ORG.value).inc()

    def unpriced(self, item: Rated, deliveries: list[Awaitable[None]]) -> None:
        """Spend counted without a catalogue price (the proxy's own cost is priced, just not by us)."""
        if item.price_source == "proxy":
            return
        event = item.event
        month = self.periods_of(event.org_id, event.occurred_at).month
        key = (event.org_id, event.provider, event.model, month)
        if key in self._unpriced:
            return
        self._unpriced.add(key)
        alert = unpriced_alert(
            event.org_id, event.provider, event.model, item.price_source, month, event.event_id, event.occurred_at
        )
        deliveries.append(self.send(self.topic, event.org_id.encode(), encode_alert(alert), None))
        self.metrics.alerts.labels(AlertKind.UNPRICED.value).inc()
