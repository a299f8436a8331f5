"""Forecasts and spike detection inside the worker, driven by ClickHouse.

The models learn from what ClickHouse holds, not from the raw stream: its
rows are already de-duplicated and a redelivered event never reaches them
twice, so the models never count anything twice either. The leader worker
runs two timers:

* **spikes**, every bucket (``spike_lag_s`` after it closes): the cost per
  user, department, model and feature of the events that occurred in the
  minute, and per org, department, model and feature in the hour (against the
  same hour of earlier days), each scored by a
  :class:`~insights.spikes.SpikeDetector`; spikes go to the ``anomalies``
  table, and the first bucket of a spike to ``alerts.v1``;
* **forecasts**, every ``forecast_every_s``: per org, department, and user with
  a budget, the closed days are learnt and the periods of the scope's budgets
  (the month when it has none) projected as P10 / P50 / P90, with the chance
  of going over and the day the money runs out; rows go to ``forecasts``, the
  latest per scope to Redis (``<prefix>:{org}:forecast``), and a budget likely
  to be exceeded to ``alerts.v1`` once per period.

The whole state (models, calibrator, what was scored and alerted) is written
to Redis after every forecast run and at most every ``checkpoint_every_s``
after spike runs, and a worker that starts reads it back: it continues where
the last checkpoint stopped, scoring again the buckets after it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from bus.topics import Send
from enforcement.keys import KeyLayout
from insights.forecast import SpendForecaster
from insights.spikes import Spike
from insights.state import (
    HOUR,
    CheckpointError,
    InsightState,
    Watch,
    dump_state,
    fresh_state,
    load_state,
    with_settings,
)
from schemas.alerts import ProjectedExceed, encode_alert
from schemas.budgets import Budget, Period, ScopeKind, period_bounds, period_key
from schemas.config_records import ConfigState
from schemas.settings import InsightSettings
from sinks.label_queries import daily_tag_costs
from sinks.queries import bucket_costs, daily_costs, orgs_since
from sinks.tables import ANOMALIES, FORECASTS, AnomalyRow, ForecastRow
from sinks.usage_store import UsageStore
from streams.metrics import InsightMetrics
from streams.spike_records import anomaly_row, entities_of, local_hours_at, org_holidays, placement, spike_alert

__all__ = ["InsightState", "InsightsRunner"]

log = logging.getLogger("spendstream.insights")

MAX_CATCH_UP = 120  # buckets scored per run when behind
_FORECAST_SCOPES = (
    ScopeKind.ORG,
    ScopeKind.DEPARTMENT,
    ScopeKind.USER,
    ScopeKind.TAG,
)  # feature, model ...: not forecast


class InsightsRunner:
    def __init__(
        self,
        redis: aioredis.Redis,
        layout: KeyLayout,
        store: UsageStore,
        config: ConfigState,
        send: Send,
        alerts_topic: str,
        settings: InsightSettings,
        metrics: InsightMetrics | None = None,
    ) -> None:
        self.redis = redis
        self.layout = layout
        self.store = store
        self.config = config
        self.send = send
        self.alerts_topic = alerts_topic
        self.settings = settings
        self.metrics = metrics or InsightMetrics()
        self.state = fresh_state(settings)
        self._lock = asyncio.Lock()
        self._saved_at = 0.0

    @property
    def state_key(self) -> str:
        return f"{self.layout.prefix}:insights:state"

    async def load(self) -> bool:
        raw = await self.redis.get(self.state_key)
        if not isinstance(raw, bytes):
            return False
        try:
            state = load_state(raw)
        except CheckpointError as exc:
            self.metrics.reset.inc()
            log.error("insights state not restored: %s", exc)
            return False
        self.state = with_settings(state, self.settings)  # thresholds changed since are applied
        self.metrics.restored.inc()
        log.info(
            "insights resumed: %d forecasts, %s",
            len(state.forecasters),
            ", ".join(f"{w.size} s buckets: {len(w.detector.entities)} entities" for w in state.watches.values()),
        )
        return True

    async def save(self) -> None:
        await self.redis.set(self.state_key, dump_state(self.state))
        self._saved_at = time.monotonic()

    async def _query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self.store.query, sql, params)

    # -- spikes -----------------------------------------------------------------------------------------

    async def spikes_tick(self, now: datetime | None = None) -> list[tuple[str, Spike]]:
        """Score the buckets closed since the last run; returns the spikes (org, spike)."""
        async with self._lock:
            began = time.perf_counter()
            found = await self._spikes(now or datetime.now(UTC))
            if time.monotonic() - self._saved_at >= self.settings.checkpoint_every_s:
                # the bucket counter is saved with the detectors, so buckets scored after the last
                # checkpoint are scored again after a restart, once; their alerts repeat their dedup keys
                await self.save()
            self.metrics.runs.labels("spikes").observe(time.perf_counter() - began)
            self.metrics.entities.labels("spikes").set(
                sum(len(w.detector.entities) for w in self.state.watches.values())
            )
            return found

    async def _spikes(self, now: datetime) -> list[tuple[str, Spike]]:
        found: list[tuple[str, Spike]] = []
        anomalies: list[AnomalyRow] = []
        for watch in self.state.watches.values():
            await self._watch(watch, now, found, anomalies)
        if anomalies:
            self.metrics.spikes.inc(len(anomalies))
            await asyncio.to_thread(self.store.insert, ANOMALIES, anomalies)
        return found

    async def _watch(
        self, watch: Watch, now: datetime, found: list[tuple[str, Spike]], anomalies: list[AnomalyRow]
    ) -> None:
        size = watch.size
        latest = int((now.timestamp() - self.settings.spike_lag_s) // size) * size - size
        if watch.last_bucket < 0:
            # a new detector (a new deployment, or a model change that reset the checkpoint) learns the recent
            # history first, reporting nothing of it, so it judges the next bucket warm
            relearn = self.settings.spike_relearn_days * 86_400 // size if size == HOUR else MAX_CATCH_UP - 1
            watch.last_bucket = latest - (relearn + 1) * size
            watch.live_from = latest
        start = watch.last_bucket + size
        if start < watch.live_from:
            latest = min(latest, start + (MAX_CATCH_UP - 1) * size)  # relearning: a run's worth at a time
        else:
            start = max(start, latest - (MAX_CATCH_UP - 1) * size)
        seasons = watch.detector.seasons
        if start > latest:
            return
        sql, params = bucket_costs(
            self.store.database,
            datetime.fromtimestamp(start, UTC),
            datetime.fromtimestamp(latest + size, UTC),
            size,
        )
        by_bucket: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        for row in await self._query(sql, params):
            by_bucket[int(row[0])].append(row[1:])
        for bucket in range(start, latest + 1, size):
            begin = datetime.fromtimestamp(bucket, UTC)
            entities = entities_of(by_bucket.get(bucket, ()), watch.kinds)
            spiked: set[str] = set()
            local = local_hours_at(self.config, begin)
            for key in watch.detector.known():
                if key not in entities:
                    season, learn = placement(seasons, local(key))
                    watch.detector.idle(key, bucket, season=season, learn=learn)
            for key, (cost, parts) in entities.items():
                season, learn = placement(seasons, local(key))
                spike = watch.detector.observe(key, bucket, cost, parts, season=season, learn=learn)
                if spike is None or bucket < watch.live_from:
                    continue
                spiked.add(key)
                org = key.split("|", 1)[0]
                found.append((org, spike))
                anomalies.append(anomaly_row(org, spike, size))
                if key not in watch.flagged:  # an episode alerts on its first bucket only
                    alert = spike_alert(org, spike, size)
                    await self.send(self.alerts_topic, org.encode(), encode_alert(alert), None)
            watch.flagged = spiked
            watch.last_bucket = bucket

    # -- forecasts --------------------------------------------------------------------------------------

    async def forecast_tick(self, now: datetime | None = None) -> int:
        """Learn closed days and project every scope's periods; returns the projections written."""
        async with self._lock:
            began = time.perf_counter()
            now = now or datetime.now(UTC)
            sql, params = orgs_since(self.store.database, now - timedelta(days=self.settings.history_days))
            orgs = {row[0] for row in await self._query(sql, params)}
            orgs |= set(self.config.orgs) | {b.org_id for b in self.config.budgets.values()}
            rows: list[ForecastRow] = []
            for org in sorted(orgs):
                rows.extend(await self._forecast_org(org, now))
            if rows:
                await asyncio.to_thread(self.store.insert, FORECASTS, rows)
            self.metrics.forecasts.inc(len(rows))
            self.metrics.entities.labels("forecasts").set(len(self.state.forecasters))
            await self.save()
            self.metrics.runs.labels("forecasts").observe(time.perf_counter() - began)
            return len(rows)

    async def _daily(
        self, org: str, budgets: list[Budget], since: datetime, timezone: str
    ) -> dict[str, dict[date, float]]:
        """Cost per day of the org, each department, and each user and tag value with a budget."""
        with_budget = {f"{b.scope.value}/{b.scope_id}" for b in budgets}
        sql, params = daily_costs(self.store.database, org, since, timezone)
        daily: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
        for day, department, user, cost in await self._query(sql, params):
            value = float(cost)
            daily[f"org/{org}"][day] += value
            if department:
                daily[f"department/{department}"][day] += value
            if f"user/{user}" in with_budget:
                daily[f"user/{user}"][day] += value
        tag_keys = sorted({b.scope_id.partition("=")[0] for b in budgets if b.scope is ScopeKind.TAG})
        if tag_keys:
            sql, params = daily_tag_costs(self.store.database, org, since, tag_keys, timezone)
            for day, key, value, cost in await self._query(sql, params):
                if f"tag/{key}={value}" in with_budget:
                    daily[f"tag/{key}={value}"][day] += float(cost)
        return daily

    async def _forecast_org(self, org: str, now: datetime) -> list[ForecastRow]:
        org_config = self.config.orgs.get(org)
        timezone = org_config.timezone if org_config else "UTC"
        zone = ZoneInfo(timezone)
        local = now.astimezone(zone)
        today = local.date()
        budgets = [b for b in self.config.budgets.values() if b.org_id == org]
        state = self.state
        known = [m.last_day for key, m in state.forecasters.items() if key.startswith(org + "|") and m.last_day]
        start_day = min(known) if known else today - timedelta(days=self.settings.history_days)
        since = datetime(start_day.year, start_day.month, start_day.day, tzinfo=zone).astimezone(UTC)
        period_starts = [period_bounds(now, b.period, timezone)[0] for b in budgets]
        since = min([since, *period_starts, period_bounds(now, Period.MONTHLY, timezone)[0]])
        daily = await self._daily(org, budgets, since, timezone)
        for budget in budgets:
            daily.setdefault(f"{budget.scope.value}/{budget.scope_id}", defaultdict(float))
        fraction = (local - local.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds() / 86_400
        holidays = org_holidays(org, org_config.holidays if org_config else "", start_day, today)
        rows: list[ForecastRow] = []
        for scope, days in daily.items():
            kind = scope.split("/", 1)[0]
            if kind not in _FORECAST_SCOPES:
                continue  # feature, model... budgets are enforced and alerted, not forecast
            model = state.forecasters.get(f"{org}|{scope}")
            if model is None:
                if len(state.forecasters) >= self.settings.max_entities:
                    continue
                model = state.forecasters[f"{org}|{scope}"] = SpendForecaster()
            model.use_holidays(holidays)
            first = min(days) if days else today
            day = max(first, (model.last_day + timedelta(days=1)) if model.last_day else first)
            while day < today:
                model.learn_day(day, days.get(day, 0.0), state.calibrator)
                day += timedelta(days=1)
            scope_budgets = [b for b in budgets if f"{b.scope.value}/{b.scope_id}" == scope]
            targets: list[tuple[Budget | None, Period]] = [(b, b.period) for b in scope_budgets]
            for target, period in targets or [(None, Period.MONTHLY)]:
                rows.append(await self._project(org, scope, model, target, period, now, timezone, days, fraction))
        return rows

    async def _project(
        self,
        org: str,
        scope: str,
        model: SpendForecaster,
        budget: Budget | None,
        period: Period,
        now: datetime,
        timezone: str,
        days: dict[date, float],
        fraction: float,
    ) -> ForecastRow:
        start, end = period_bounds(now, period, timezone)
        zone = ZoneInfo(timezone)
        first_day = start.astimezone(zone).date()
        last_day = (end - timedelta(seconds=1)).astimezone(zone).date()
        today = now.astimezone(zone).date()
        spent = sum(v for d, v in days.items() if first_day <= d <= today)
        projection = model.project(today, last_day, spent, days.get(today, 0.0), fraction, self.state.calibrator)
        limit = budget.limit_nanos if budget else 0
        probability = projection.probability_over(limit) if budget else 0.0
        runout = model.runs_out(today, last_day, spent, limit) if budget else None
        elapsed = (today - first_day).days + fraction
        naive = spent / elapsed * ((last_day - first_day).days + 1) if elapsed > 0 else 0.0
        key = period_key(now, period, timezone)
        latest = {
            "period": period.value,
            "period_key": key,
            "spent_nanos": int(spent),
            "p10_nanos": int(projection.p10),
            "p50_nanos": int(projection.p50),
            "p90_nanos": int(projection.p90),
            "budget_nanos": limit,
            "probability_over": round(probability, 4),
            "runout_date": runout.isoformat() if runout else None,
            "at": now.isoformat(),
        }
        await self.redis.hset(self.layout.forecast(org), f"{scope}/{period.value}", json.dumps(latest))
        if budget is not None and probability >= self.settings.alert_probability:
            alert = ProjectedExceed(
                org_id=org,
                scope=scope,
                period=period.value,
                period_key=key,
                limit_nanos=limit,
                spent_nanos=int(spent),
                projected_p10_nanos=int(projection.p10),
                projected_p50_nanos=int(projection.p50),
                projected_p90_nanos=int(projection.p90),
                probability=round(probability, 3),
                runout_date=runout.isoformat() if runout else None,
                detected_at=now.isoformat(),
            )
            dedup = alert.dedup_key
            if dedup not in self.state.alerted:
                await self.send(self.alerts_topic, org.encode(), encode_alert(alert), None)
                if len(self.state.alerted) > 50_000:
                    self.state.alerted.clear()  # the delivery ledger still keeps each alert once
                self.state.alerted.add(dedup)
        growth = model.weekly_growth()
        return ForecastRow(
            now,
            org,
            scope,
            period.value,
            key,
            start,
            end,
            int(spent),
            int(projection.p10),
            int(projection.p50),
            int(projection.p90),
            int(naive),
            limit,
            probability,
            runout,
            growth,
            model.kind,
        )
