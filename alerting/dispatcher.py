"""Delivering ``alerts.v1``: each alert to each of its recipients once.

The alerts agent hands batches of records to :class:`AlertDispatcher`. For each
alert it plans the deliveries (routing, :mod:`alerting.plan`), adds the top
cost drivers and fills spend a redelivered crossing lacks, then delivers to
every target concurrently:

* a Redis ledger entry per (alert, channel, target) records the outcome the
  moment it is known, so a worker killed mid-delivery and restarted sends
  only what had not been sent, and a second copy of an alert sends nothing;
* retries back off exponentially, or as long as a 429's Retry-After asks;
  after ``max_attempts`` (or a 4xx that no retry can fix) the delivery is
  recorded as failed;
* quiet hours hold back everything but critical alerts on that channel, and
  a per-channel token bucket caps the rate; both are recorded as suppressed;
* every outcome is a row of ``alert_history`` in ClickHouse and a metric.

The agent acknowledges a batch only after all of its deliveries have an outcome.

A PagerDuty trigger opens an incident that :meth:`AlertDispatcher.check_open`
resolves when the condition clears: a new period, the budget raised above the
spend, or the budget removed. First hard-cap denials, queued in Redis by the
cap client, become ``cap_denied`` alerts in :meth:`AlertDispatcher.pump_denials`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from alerting.enrich import Enricher
from alerting.plan import Delivery, Plan, TokenBucket, budget_of, delivery_digest, of_closed_period, plan, quiet
from alerting.render import AlertView, view_of
from alerting.senders import DeliveryError, Senders
from bus.topics import Send
from enforcement.keys import KeyLayout
from retries.policy import Retry
from schemas.alerts import (
    Alert,
    BudgetStage,
    Resolved,
    decode_alert,
    decode_denial,
    encode_alert,
)
from schemas.budgets import Channel, period_key
from schemas.config_records import ConfigState
from schemas.settings import AlertSettings
from sinks.tables import ALERT_HISTORY, AlertHistoryRow
from sinks.usage_store import UsageStore

__all__ = ["LATE", "AlertDispatcher", "AlertMetrics"]

LATE = "late_not_sent"  # a stage of a period that had ended: recorded, not sent (the org's notify_closed_periods)

log = logging.getLogger("spendstream.alerts")


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        counter = partial(Counter, registry=registry)
        histogram = partial(Histogram, registry=registry)
        self.received = counter("spendstream_alerts_received", "Alerts read from alerts.v1", ["kind"])
        self.rejected = counter("spendstream_alerts_rejected", "alerts.v1 records that are not alerts")
        self.deliveries = counter(
            "spendstream_alert_deliveries", "Deliveries by channel type and outcome", ["channel", "outcome"]
        )
        self.attempts = counter("spendstream_alert_delivery_attempts", "Send attempts", ["channel"])
        self.unrouted = counter("spendstream_alerts_unrouted", "Alerts with no channel, or a missing one", ["reason"])
        self.seconds = histogram(
            "spendstream_alert_delivery_seconds",
            "From the alert's detection to a delivered message",
            ["channel"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
        )


class AlertDispatcher:
    def __init__(
        self,
        redis: aioredis.Redis,
        layout: KeyLayout,
        config: ConfigState,
        senders: Senders,
        store: UsageStore,
        settings: AlertSettings,
        send: Send,
        alerts_topic: str,
        metrics: AlertMetrics | None = None,
    ) -> None:
        self.redis = redis
        self.layout = layout
        self.config = config
        self.senders = senders
        self.store = store
        self.enricher = Enricher(redis, layout, config, store)
        self.settings = settings
        self.send = send
        self.alerts_topic = alerts_topic
        self.metrics = metrics or AlertMetrics()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._history_rows: list[AlertHistoryRow] = []

    async def handle(self, records: Sequence[bytes | None]) -> None:
        """Deliver a batch of ``alerts.v1`` records; returns when every delivery has an outcome.

        Alerts about one scope go out in order (50 % before 80 %); different scopes at once. The
        top cost drivers of the whole batch are read in one query per org, period and scope kind."""
        routed: list[tuple[Alert, Plan]] = []
        for raw in records:
            try:
                alert = decode_alert(raw or b"")
            except ValueError as exc:
                self.metrics.rejected.inc()
                log.error("alerts.v1: skipping a record that is not an alert: %s", exc)
                continue
            self.metrics.received.labels(alert.kind).inc()
            planned = plan(alert, self.config.budgets, self.config.channels, self.config.routing)
            for name in planned.missing:
                self.metrics.unrouted.labels("unknown_channel").inc()
                log.error("alert %s: channel %r of org %s is not configured", alert.dedup_key, name, alert.org_id)
            if planned.deliveries:
                routed.append((alert, planned))
            elif not planned.missing:
                self.metrics.unrouted.labels("no_route").inc()
        if not routed:
            return
        enriched = await self.enricher.enrich([alert for alert, _ in routed])
        by_scope: dict[tuple[str, str], list[tuple[Alert, Plan]]] = {}
        for alert, (_, planned) in zip(enriched, routed, strict=True):
            by_scope.setdefault((alert.org_id, alert.scope), []).append((alert, planned))
        await asyncio.gather(*(self._in_order(group) for group in by_scope.values()))

    async def _in_order(self, group: list[tuple[Alert, Plan]]) -> None:
        for alert, planned in group:
            view = view_of(alert, self.settings.console_url)
            await asyncio.gather(*(self._deliver(alert, view, d) for d in planned.deliveries))

    async def _deliver(self, alert: Alert, view: AlertView, delivery: Delivery) -> str:
        channel = delivery.channel
        digest = delivery_digest(alert.dedup_key, channel, delivery.target)
        key = self.layout.alert_sent(alert.org_id, digest)
        if await self.redis.exists(key):
            self.metrics.deliveries.labels(channel.type.value, "duplicate").inc()
            return "duplicate"
        attempts, error = 0, ""
        org = self.config.orgs.get(alert.org_id)
        notify_closed, timezone = (org.notify_closed_periods, org.timezone) if org else (False, "UTC")
        if not notify_closed and of_closed_period(alert, timezone):
            outcome = LATE
        elif quiet(alert, channel, datetime.now(UTC)):
            outcome = "suppressed_quiet_hours"
        elif not self._bucket(channel.org_id, channel.name, channel.rate_per_minute).take(time.monotonic()):
            outcome = "suppressed_rate_limit"
        else:
            outcome, attempts, error = await self._send_with_retries(alert, view, delivery)
        await self.redis.set(key, outcome, ex=self.settings.ledger_days * 86_400)
        if outcome == "sent":
            await self._track_incident(alert, delivery)
            self.metrics.seconds.labels(channel.type.value).observe(_since(alert.detected_at))
        self.metrics.deliveries.labels(channel.type.value, outcome).inc()
        if outcome == "failed":
            log.error("alert %s to %s failed for good: %s", alert.dedup_key, delivery.label, error)
        self._record(alert, delivery, outcome, attempts, error, digest)
        return outcome

    async def _send_with_retries(self, alert: Alert, view: AlertView, delivery: Delivery) -> tuple[str, int, str]:
        settings = self.settings
        attempts = 0

        async def send() -> None:
            nonlocal attempts
            attempts += 1
            self.metrics.attempts.labels(delivery.channel.type.value).inc()
            await self.senders.send(delivery.channel, delivery.target, alert, view)

        def failed(attempt: int, exc: BaseException) -> None:
            log.warning("alert %s to %s: %s (attempt %d)", alert.dedup_key, delivery.label, exc, attempt)

        policy = Retry(
            (DeliveryError,),
            base_s=settings.backoff_base_s,
            max_s=settings.backoff_max_s,
            attempts=settings.max_attempts,
            on_failure=failed,
        )
        try:
            await policy.acall(send)
        except DeliveryError as exc:
            return "failed", attempts, exc.reason
        return "sent", attempts, ""

    def _bucket(self, org_id: str, name: str, rate: int) -> TokenBucket:
        bucket = self._buckets.get((org_id, name))
        if bucket is None or bucket.capacity != rate:
            bucket = self._buckets[(org_id, name)] = TokenBucket(rate, time.monotonic())
        return bucket

    async def _track_incident(self, alert: Alert, delivery: Delivery) -> None:
        if delivery.channel.type is not Channel.PAGERDUTY:
            return
        opened = self.layout.alerts_open(alert.org_id)
        if isinstance(alert, Resolved):
            await self.redis.hdel(opened, alert.resolves)
            return
        budget = budget_of(alert, self.config.budgets)
        if budget is None or alert.period_key is None:
            return  # only budget incidents clear by themselves; others are resolved in PagerDuty
        incident = {
            "channel": delivery.channel.name,
            "budget": f"budget/{budget.org_id}/{budget.key}",
            "scope": alert.scope,
            "period_key": alert.period_key,
            "stage": alert.stage if isinstance(alert, BudgetStage) else 100,
        }
        await self.redis.hset(opened, alert.dedup_key, json.dumps(incident))
        await self.redis.sadd(self.layout.alerts_open_orgs(), alert.org_id)

    def _record(
        self, alert: Alert, delivery: Delivery, outcome: str, attempts: int, error: str, digest: str = ""
    ) -> None:
        row = AlertHistoryRow(
            datetime.now(UTC),
            alert.org_id,
            alert.dedup_key,
            alert.kind,
            alert.scope,
            alert.period_key or "",
            alert.stage if isinstance(alert, BudgetStage) else 0,
            delivery.channel.name,
            delivery.channel.type.value,
            delivery.label,
            outcome,
            attempts,
            error[:500],
            int(min(_since(alert.detected_at), 4e6) * 1000),
            digest,  # the ledger key's digest: a Redis that lost its ledger is given it back from here
        )
        self._history_rows.append(row)

    async def flush_history(self) -> int:
        """Write the buffered history rows (the alerts agent's timer calls this every second)."""
        rows, self._history_rows = self._history_rows, []
        if not rows:
            return 0
        try:
            await asyncio.to_thread(self.store.insert, ALERT_HISTORY, rows)
        except Exception as exc:  # noqa: BLE001 - the deliveries happened and are in the ledger
            log.warning("%d alert history rows not written: %s", len(rows), exc)
            if len(self._history_rows) < 100_000:
                self._history_rows = rows + self._history_rows  # try again next time
            return 0
        return len(rows)

    # -- incidents that clear, denials that alert -------------------------------------------------------------------

    async def check_open(self, now: datetime | None = None) -> int:
        """Emit a resolution for every open incident whose condition has cleared; returns how many."""
        now = now or datetime.now(UTC)
        emitted = 0
        for raw_org in await self.redis.smembers(self.layout.alerts_open_orgs()):
            org_id = raw_org.decode() if isinstance(raw_org, bytes) else str(raw_org)
            entries = await self.redis.hgetall(self.layout.alerts_open(org_id))
            if not entries:
                await self.redis.srem(self.layout.alerts_open_orgs(), org_id)
                continue
            for raw_key, raw_incident in entries.items():
                dedup_key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
                incident = json.loads(raw_incident)
                reason = await self._cleared(incident, now)
                if reason is None:
                    continue
                resolution = Resolved(
                    org_id=org_id,
                    scope=incident["scope"],
                    period_key=incident["period_key"],
                    detected_at=now.isoformat(),
                    resolves=dedup_key,
                    channels=[incident["channel"]],
                    reason=reason,
                )
                await self.send(self.alerts_topic, org_id.encode(), encode_alert(resolution), None)
                # on alerts.v1 the resolution is delivered at least once; checking again would re-emit it
                await self.redis.hdel(self.layout.alerts_open(org_id), dedup_key)
                emitted += 1
        return emitted

    async def _cleared(self, incident: dict[str, Any], now: datetime) -> str | None:
        budget = self.config.budgets.get(incident["budget"])
        if budget is None:
            return "budget removed"
        if period_key(now, budget.period, budget.timezone) != incident["period_key"]:
            return "new period"
        threshold = -(-budget.limit_nanos * int(incident["stage"]) // 100)
        spent = await self.enricher.spent(budget, now) or 0
        if spent < threshold:
            return "budget raised above the spend"
        return None

    async def pump_denials(self, limit: int = 100) -> int:
        """Turn queued first denials into ``cap_denied`` alerts on alerts.v1; returns how many."""
        queue = self.layout.denials()
        raw = await self.redis.lrange(queue, 0, limit - 1)
        for item in raw:
            try:
                alert = decode_denial(item).alert()
            except ValueError as exc:
                log.error("skipping a queued denial that cannot be read: %s", exc)
                continue
            await self.send(self.alerts_topic, alert.org_id.encode(), encode_alert(alert), None)
        if raw:
            await self.redis.ltrim(queue, len(raw), -1)
        return len(raw)


def _since(iso: str) -> float:
    try:
        detected = datetime.fromisoformat(iso)
    except ValueError:
        return 0.0
    if detected.tzinfo is None:
        detected = detected.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - detected).total_seconds())
