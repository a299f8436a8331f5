"""Delivering ``alerts.v1``: each alert to each of its recipients once.

The alerts agent hands batches of records to :class:`AlertDispatcher`. For each
alert it plans the deliveries (routing, :mod:`sinks.alert_plan`), adds the top
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
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram

from enforcement.keys import KeyLayout, PeriodKeys
from schemas.alerts import Alert, AlertKind, decode_alert, encode_alert
from schemas.budgets import Budget, Channel, period_bounds, period_key
from schemas.settings import AlertSettings
from sinks.alert_channels import DeliveryError, Senders
from sinks.alert_plan import Delivery, Plan, TokenBucket, backoff_s, budget_of, delivery_digest, plan, quiet
from sinks.alert_render import AlertView, view_of
from sinks.queries import top_cost_drivers_by_scope
from sinks.usage_store import UsageStore
from streams.config_records import ConfigState
from streams.pipeline import Send

__all__ = ["AlertDispatcher", "AlertMetrics"]

log = logging.getLogger("spendstream.alerts")


_WITH_DRIVERS = (AlertKind.BUDGET_STAGE, AlertKind.CAP_DENIED, AlertKind.PROJECTED_EXCEED)


class AlertMetrics:
    def __init__(self) -> None:
        self.received = Counter("spendstream_alerts_received", "Alerts read from alerts.v1", ["kind"])
        self.rejected = Counter("spendstream_alerts_rejected", "alerts.v1 records that are not alerts")
        self.deliveries = Counter(
            "spendstream_alert_deliveries", "Deliveries by channel type and outcome", ["channel", "outcome"]
        )
        self.attempts = Counter("spendstream_alert_delivery_attempts", "Send attempts", ["channel"])
        self.unrouted = Counter("spendstream_alerts_unrouted", "Alerts with no channel, or a missing one", ["reason"])
        self.seconds = Histogram(
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
        self.settings = settings
        self.send = send
        self.alerts_topic = alerts_topic
        self.metrics = metrics or AlertMetrics()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._history_rows: list[tuple[Any, ...]] = []

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
        enriched = await self._enrich([alert for alert, _ in routed])
        by_scope: dict[tuple[str, str], list[tuple[Alert, Plan]]] = {}
        for alert, (_, planned) in zip(enriched, routed, strict=True):
            by_scope.setdefault((alert.org_id, alert.scope), []).append((alert, planned))
        await asyncio.gather(*(self._in_order(group) for group in by_scope.values()))

    async def _in_order(self, group: list[tuple[Alert, Plan]]) -> None:
        for alert, planned in group:
            view = view_of(alert, self.settings.dashboard_url)
            await asyncio.gather(*(self._deliver(alert, view, d) for d in planned.deliveries))

    async def _deliver(self, alert: Alert, view: AlertView, delivery: Delivery) -> str:
        channel = delivery.channel
        digest = delivery_digest(alert.dedup_key, channel, delivery.target)
        key = self.layout.alert_sent(alert.org_id, digest)
        if await self.redis.exists(key):
            self.metrics.deliveries.labels(channel.type.value, "duplicate").inc()
            return "duplicate"
        attempts, error = 0, ""
        if quiet(alert, channel, datetime.now(UTC)):
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
        attempt = 0
        while True:
            attempt += 1
            self.metrics.attempts.labels(delivery.channel.type.value).inc()
            try:
                await self.senders.send(delivery.channel, delivery.target, alert, view)
                return "sent", attempt, ""
            except DeliveryError as exc:
                if not exc.retryable or attempt >= settings.max_attempts:
                    return "failed", attempt, exc.reason
                wait = backoff_s(attempt, exc.retry_after, settings.backoff_base_s, settings.backoff_max_s)
                log.warning(
                    "alert %s to %s: %s; retry %d in %.1fs", alert.dedup_key, delivery.label, exc, attempt, wait
                )
                await asyncio.sleep(wait)

    def _bucket(self, org_id: str, name: str, rate: int) -> TokenBucket:
        bucket = self._buckets.get((org_id, name))
        if bucket is None or bucket.capacity != rate:
            bucket = self._buckets[(org_id, name)] = TokenBucket(rate, time.monotonic())
        return bucket

    async def _track_incident(self, alert: Alert, delivery: Delivery) -> None:
        if delivery.channel.type is not Channel.PAGERDUTY:
            return
        opened = self.layout.alerts_open(alert.org_id)
        if alert.kind == AlertKind.RESOLVED:
            await self.redis.hdel(opened, alert.resolves or "")
            return
        budget = budget_of(alert, self.config.budgets)
        if budget is None or alert.period_key is None:
            return  # only budget incidents clear by themselves; others are resolved in PagerDuty
        incident = {
            "channel": delivery.channel.name,
            "budget": f"budget/{budget.org_id}/{budget.key}",
            "scope": alert.scope,
            "period_key": alert.period_key,
            "stage": alert.stage or 100,
        }
        await self.redis.hset(opened, alert.dedup_key, json.dumps(incident))
        await self.redis.sadd(self.layout.alerts_open_orgs(), alert.org_id)

    def _record(
        self, alert: Alert, delivery: Delivery, outcome: str, attempts: int, error: str, digest: str = ""
    ) -> None:
        row = (
            datetime.now(UTC),
            alert.org_id,
            alert.dedup_key,
            alert.kind,
            alert.scope,
            alert.period_key or "",
            alert.stage or 0,
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
            await asyncio.to_thread(self.store.insert_alert_history, rows)
        except Exception as exc:  # noqa: BLE001 - the deliveries happened and are in the ledger
            log.warning("%d alert history rows not written: %s", len(rows), exc)
            if len(self._history_rows) < 100_000:
                self._history_rows = rows + self._history_rows  # try again next time
            return 0
        return len(rows)

    # -- what the message says -------------------------------------------------------------------------------------

    async def _enrich(self, alerts: list[Alert]) -> list[Alert]:
        """Fill what a message needs: the limit and spend a redelivered crossing lacks, the top cost drivers."""
        budgets = [budget_of(alert, self.config.budgets) for alert in alerts]
        drivers = await self._drivers(alerts, budgets)
        out = []
        for alert, budget, found in zip(alerts, budgets, drivers, strict=True):
            changes: dict[str, Any] = {}
            if budget is not None and not alert.limit_nanos:
                changes["limit_nanos"] = budget.limit_nanos
                spent = await self._spent(budget, _when(alert))
                if spent is not None:
                    changes["spent_nanos"] = spent
            if found is not None:
                changes["drivers"] = found
            fields = {name: getattr(alert, name) for name in alert.__struct_fields__}
            out.append(Alert(**(fields | changes)) if changes else alert)
        return out

    async def _spent(self, budget: Budget, when: datetime) -> int | None:
        keys = self.layout.spent(budget.org_id, PeriodKeys.at(when, budget.timezone))
        index = {"daily": 0, "weekly": 1}.get(budget.period.value, 2)
        value = await self.redis.hget(keys[index], f"{budget.scope.value}/{budget.scope_id}")
        return int(value) if value is not None else None

    async def _drivers(self, alerts: list[Alert], budgets: list[Budget | None]) -> list[list[dict[str, Any]] | None]:
        """Top cost drivers per alert (None where the alert needs none), one query per org, period and kind.

        They come from ClickHouse, which trails Redis by up to the sink interval (1 s): the event that
        crossed a stage may not be in them yet."""
        wanted: dict[tuple[str, datetime, datetime, str], set[str]] = {}
        keys: list[tuple[tuple[str, datetime, datetime, str], str] | None] = []
        for alert, budget in zip(alerts, budgets, strict=True):
            if budget is None or alert.drivers or alert.kind not in _WITH_DRIVERS or budget.scope.value == "apikey":
                keys.append(None)
                continue
            start, end = period_bounds(_when(alert), budget.period, budget.timezone)
            group = (alert.org_id, start, end, budget.scope.value)
            wanted.setdefault(group, set()).add(budget.scope_id)
            keys.append((group, budget.scope_id))
        found: dict[tuple[tuple[str, datetime, datetime, str], str], list[dict[str, Any]]] = {}
        for group, ids in wanted.items():
            org_id, start, end, kind = group
            sql, params = top_cost_drivers_by_scope(self.store.database, org_id, start, end, kind, sorted(ids), 3)
            try:
                rows = await asyncio.wait_for(asyncio.to_thread(self.store.query, sql, params), 2.0)
            except Exception as exc:  # noqa: BLE001 - a message without drivers beats no message
                log.warning("top cost drivers of %s not read: %s", org_id, exc)
                continue
            for scope_id, user, model, feature, cost, _, share in rows:
                found.setdefault((group, scope_id), []).append(
                    {
                        "user_id": user,
                        "model": model,
                        "feature": feature,
                        "cost_nanos": int(cost),
                        "share": float(share),
                    }
                )
        return [None if key is None else found.get(key, []) for key in keys]

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
                resolution = Alert(
                    kind=AlertKind.RESOLVED.value,
                    dedup_key=f"resolved|{dedup_key}",
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
        spent = await self._spent(budget, now) or 0
        if spent < threshold:
            return "budget raised above the spend"
        return None

    async def pump_denials(self, limit: int = 100) -> int:
        """Turn queued first denials into ``cap_denied`` alerts on alerts.v1; returns how many."""
        queue = self.layout.denials()
        raw = await self.redis.lrange(queue, 0, limit - 1)
        for item in raw:
            try:
                denial = json.loads(item)
                alert = Alert(
                    kind=AlertKind.CAP_DENIED.value,
                    dedup_key=f"{denial['org_id']}|{denial['scope']}|{denial['period_key']}|cap_denied",
                    org_id=denial["org_id"],
                    scope=denial["scope"],
                    period=denial["period"],
                    period_key=denial["period_key"],
                    limit_nanos=int(denial["limit_nanos"]),
                    spent_nanos=int(denial["spent_nanos"]),
                    detected_at=denial["detected_at"],
                    reason=f"request {denial['request_id']} needing {denial['estimate_nanos']} nano-USD was denied",
                )
            except (ValueError, KeyError, TypeError) as exc:
                log.error("skipping a queued denial that cannot be read: %s", exc)
                continue
            await self.send(self.alerts_topic, alert.org_id.encode(), encode_alert(alert), None)
        if raw:
            await self.redis.ltrim(queue, len(raw), -1)
        return len(raw)


def _when(alert: Alert) -> datetime:
    text = alert.occurred_at or alert.detected_at
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _since(iso: str) -> float:
    try:
        detected = datetime.fromisoformat(iso)
    except ValueError:
        return 0.0
    if detected.tzinfo is None:
        detected = detected.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - detected).total_seconds())
