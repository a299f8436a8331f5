"""Restoring the derived state in Redis from the config topic and ClickHouse: ``spendstream rebuild``, and
what the worker runs by itself when it finds Redis reset.

Redis holds derived state only. In two phases, for every org:

1. **caps**: its settings and budgets (from ``config.v1``), the alert delivery ledger (from
   ``alert_history``, so an alert delivered before is not sent again: it comes first, because an enforced
   cap queues its first denial again), the spend counters of its open day, week and month (from the raw
   events, cut in the org's time zone, one scan per org), and then the mark that its state is loaded:
   from here on proxies' caps are enforced again;
2. **the stream's memory**: the per-partition offset watermarks (so a redelivery is still recognised) and
   the duplicate window (fingerprints of the events ingested within it).

Reservations, stage marks and denial marks are left as they are: when Redis kept its data they are
right, and when it lost them there is nothing to restore.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bus.config_topic import read_config
from bus.topics import Topics
from enforcement.budget_store import apply_budgets
from enforcement.core import DUPLICATE_WINDOW_S, SPENT_RETENTION_S
from enforcement.keys import KeyLayout, PeriodKeys, fingerprint
from enforcement.redis_clients import all_nodes, run_id, sync_redis
from enforcement.settle_script import SEEN_GENERATIONS
from schemas.budgets import OrgConfig, Period, period_bounds
from schemas.config_records import ConfigState
from schemas.settings import Settings
from sinks import queries
from sinks.tables import UsageRow
from sinks.usage_rows import content_digest
from sinks.usage_store import UsageStore

__all__ = ["RebuildReport", "mark_restored", "rebuild", "rebuild_with", "restore_if_lost", "text_of"]

_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class RebuildReport:
    orgs: int
    counters: int
    budgets: int
    fingerprints: int
    deliveries: int = 0
    caps_s: float = 0.0  # from the start until every org's caps were enforced again
    total_s: float = 0.0
    events: int = 0  # the events of the open periods the counters were summed from


def rebuild(
    settings: Settings, now: datetime | None = None, progress: Callable[[str], None] = lambda line: None
) -> RebuildReport:
    """``spendstream rebuild``: clients from settings, then :func:`rebuild_with`."""
    client = sync_redis(settings.redis)
    ch = settings.clickhouse
    store = UsageStore.of(ch)
    try:
        report = rebuild_with(settings, client, store, now, progress)
        mark_restored(client, KeyLayout(settings.redis.key_prefix), report)
        return report
    finally:
        client.close()
        store.reset()


def restore_if_lost(
    settings: Settings, client: Any, store: UsageStore, progress: Callable[[str], None] = lambda line: None
) -> RebuildReport | None:
    """At a worker's start: rebuild when the running Redis process's state is not marked restored."""
    layout = KeyLayout(settings.redis.key_prefix)
    marker = client.hget(layout.state(), "run_id")
    if marker is not None and text_of(marker) == run_id(client.info("server", **all_nodes(client))):
        return None
    report = rebuild_with(settings, client, store, progress=progress)
    mark_restored(client, layout, report)
    return report


def mark_restored(client: Any, layout: KeyLayout, report: RebuildReport | None = None) -> str:
    """Record that this Redis process's state is restored (the worker checks it every second); its run_id."""
    serving = run_id(client.info("server", **all_nodes(client)))
    fields = {"run_id": serving, "at": str(time.time())}
    if report is not None:
        fields |= {"caps_s": f"{report.caps_s:.3f}", "total_s": f"{report.total_s:.3f}", "events": str(report.events)}
    client.hset(layout.state(), mapping=fields)
    return serving


def text_of(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def rebuild_with(
    settings: Settings,
    client: Any,
    store: UsageStore,
    now: datetime | None = None,
    progress: Callable[[str], None] = lambda line: None,
    on_caps: Callable[[], None] = lambda: None,
) -> RebuildReport:
    began = time.perf_counter()
    now = now or datetime.now(UTC)
    layout = KeyLayout(settings.redis.key_prefix)
    database = store.database
    records, ends = read_config(settings.kafka.bootstrap, Topics(settings.kafka.topic_prefix).config)
    state = ConfigState()
    for record, _, _ in records:
        try:
            state.apply(record)
        except ValueError as exc:
            progress(f"config: skipped {exc}")
    epoch = ",".join(f"{p}:{o}" for p, o in sorted(ends.items())) or "empty"

    orgs = {row[0] for row in store.query(*queries.orgs_since(database, now - timedelta(days=40)))}
    orgs |= set(state.orgs)
    configs = [state.orgs.get(org_id, OrgConfig(org_id)) for org_id in sorted(orgs)]
    budgets = apply_budgets(client, layout, configs, state.budgets.values(), epoch=None)
    progress(f"config: {len(state.orgs)} orgs configured, {budgets} budgets")

    # The ledger before any cap is enforced: an enforced cap queues its first denial again, and the alert it
    # becomes must find the delivery that already went out, or it is sent twice.
    deliveries = _ledger(client, store, layout, now, settings.alerts.ledger_days)
    progress(f"alert ledger: {deliveries:,} deliveries")
    counters = events = 0
    for config in configs:
        counted, summed = _counters(client, store, layout, config, now)
        counters += counted
        events += summed
        client.hset(layout.org_settings(config.org_id), "loaded", epoch)  # its caps are enforced from here on
        progress(f"{config.org_id}: {counted} counters from {summed:,} events ({config.timezone})")
    caps_s = time.perf_counter() - began
    on_caps()

    sql, params = queries.usage_watermarks_by_org(database)
    pipe = client.pipeline(transaction=False)
    for org_id, partition, offset in store.query(sql, params):
        pipe.hset(layout.watermarks(org_id), str(partition), int(offset))
    pipe.execute()
    fingerprints = _duplicate_window(client, store, layout, now)
    progress(f"duplicate window: {fingerprints:,} fingerprints")
    return RebuildReport(
        len(configs), counters, budgets, fingerprints, deliveries, caps_s, time.perf_counter() - began, events
    )


def _counters(client: Any, store: UsageStore, layout: KeyLayout, org: OrgConfig, now: datetime) -> tuple[int, int]:
    """Write the org's open-period counters; (how many, from how many events)."""
    periods = PeriodKeys.at(now, org.timezone)
    day, week, month = (period_bounds(now, p, org.timezone)[0] for p in (Period.DAILY, Period.WEEKLY, Period.MONTHLY))
    rows = store.query(
        *queries.period_spend_by_scopes(store.database, org.org_id, day, week, month, now + timedelta(days=1))
    )
    pipe = client.pipeline(transaction=True)
    ends = (periods.day_end_ms, periods.week_end_ms, periods.month_end_ms)
    for position, (key, end_ms) in enumerate(zip(layout.spent(org.org_id, periods), ends, strict=True), start=1):
        pipe.delete(key)
        values = {str(row[0]): int(row[position]) for row in rows if row[position]}
        if values:
            pipe.hset(key, mapping=values)
            pipe.expireat(key, end_ms // 1000 + SPENT_RETENTION_S)
    pipe.execute()
    events = next((int(row[4]) for row in rows if row[0] == f"org/{org.org_id}"), 0)
    return len(rows), events


def _duplicate_window(client: Any, store: UsageStore, layout: KeyLayout, now: datetime) -> int:
    """The fingerprints of the events ingested within the generations SETTLE still looks in, each in the
    generation of its arrival (when ClickHouse stored it, the nearest record of arrival there is), under
    its content digest and the origin it was counted from: one HSET and one EXPIREAT per bucket, in large
    pipelines."""
    span = DUPLICATE_WINDOW_S // SEEN_GENERATIONS
    oldest = (int(now.timestamp()) // span - SEEN_GENERATIONS) * span  # the oldest generation looked in
    rows = store.query(*queries.ingested_since(store.database, datetime.fromtimestamp(oldest, UTC)))
    buckets: dict[str, dict[bytes, bytes]] = {}
    expiries: dict[str, int] = {}
    for values in rows:
        row, ingested_at = UsageRow(*values[:-1]), values[-1]
        at = ingested_at if ingested_at.tzinfo else ingested_at.replace(tzinfo=UTC)
        generation = int(at.timestamp()) // span
        print_ = fingerprint(row.event_id)
        key = layout.seen_generation(row.org_id, print_, generation)
        origin = f"{row.kafka_partition}:{row.kafka_offset}".encode()
        buckets.setdefault(key, {})[print_] = content_digest(row) + origin
        expiries[key] = (generation + SEEN_GENERATIONS + 1) * span
    pipe = client.pipeline(transaction=False)
    for count, (key, mapping) in enumerate(buckets.items(), start=1):
        pipe.hset(key, mapping=mapping)
        pipe.expireat(key, expiries[key])
        if count % _BATCH == 0:
            pipe.execute()
    pipe.execute()
    return len(rows)


def _ledger(client: Any, store: UsageStore, layout: KeyLayout, now: datetime, days: int) -> int:
    rows = store.query(*queries.alert_ledger(store.database, now - timedelta(days=days)))
    pipe = client.pipeline(transaction=False)
    for count, (org_id, digest, outcome) in enumerate(rows, start=1):
        pipe.set(layout.alert_sent(org_id, digest), outcome, ex=days * 86_400, nx=True)
        if count % _BATCH == 0:
            pipe.execute()
    pipe.execute()
    return len(rows)
