"""ClickHouse's cost per event, for the capacity model (docs/capacity.md): bytes on disk per event in
``usage_events`` and in the rollups (the real tables, codecs and views of sinks/schema.py), and insert
rows/s through the sink's own path (``UsageStore.insert_usage``: clickhouse-connect, zstd, a dedup token a
batch).

The events are the sample trace's, rated by the example price catalogue, with random UUIDs as event and
request ids (LiteLLM's call ids are UUIDs: the least compressible ids a proxy sends) and the example's
allocation tags. Baseline in the same run: the same batches into a copy of ``usage_events`` with no views,
so the views' share of the insert time is the difference.

Writes bench/results/storage.json.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import write_result
from schemas.price_sources import load_overrides
from schemas.pricing import rate
from schemas.settings import Settings
from sinks.tables import USAGE_EVENTS, UsageRow
from sinks.usage_rows import usage_row
from sinks.usage_store import UsageStore
from stack import manager
from workloads.generators import DEFAULT_TRACE, trace_events

EVENTS = 1_000_000
BATCH = 5_000  # about what a worker inserts at once under load
PRICES = Path(__file__).resolve().parent.parent / "examples" / "prices.yaml"


def rows(count: int) -> list[UsageRow]:
    catalogue = load_overrides(PRICES.read_text())
    start = datetime.now(UTC) - timedelta(days=2)
    out = []
    for i, traced in enumerate(trace_events(DEFAULT_TRACE.read_text(), count, start=start, speedup=4.0)):
        event = msgspec.structs.replace(traced, event_id=str(uuid.uuid4()), request_id=str(uuid.uuid4()))
        rating = rate(event, catalogue)
        out.append(
            usage_row(event, rating.cost_nanos, rating.source.value, i % 8, i // 8, split=rating.split,
                      tags={k: str(v) for k, v in (event.metadata or {}).items()})
        )  # fmt: skip
        if i % 100_000 == 0:
            sys.stderr.write(f"\r  rating {i:>9,}/{count:,}")
    sys.stderr.write("\n")
    return out


def insert_rate(store: UsageStore, batches: list[list[UsageRow]], label: str) -> float:
    began = time.perf_counter()
    for n, batch in enumerate(batches):
        store.insert_usage(batch, f"{label}-{n}")
        if n % 20 == 0:
            sys.stderr.write(f"\r  {label}: {(n + 1) * BATCH:>9,} rows")
    sys.stderr.write("\n")
    return len(batches) * BATCH / (time.perf_counter() - began)


def on_disk(store: UsageStore) -> dict[str, tuple[int, int, int]]:
    """Per table of the database: (rows, bytes on disk, bytes uncompressed) of its active parts."""
    found = store.query(
        "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
        "WHERE database = {db:String} AND active GROUP BY table",
        {"db": store.database},
    )
    return {str(t): (int(r), int(b), int(u)) for t, r, b, u in found}


def main() -> None:
    settings = Settings()
    manager.up(settings.stack)
    database = f"storage_{uuid.uuid4().hex[:8]}"
    store = UsageStore.of(settings.clickhouse.model_copy(update={"database": database}), timeout_s=600)
    plain = UsageStore.of(settings.clickhouse.model_copy(update={"database": database + "_plain"}), timeout_s=600)
    try:
        store.migrate()
        plain.client.command(f"CREATE DATABASE IF NOT EXISTS {plain.database}")
        plain.client.command(USAGE_EVENTS.create(plain.database))
        made = rows(EVENTS)
        batches = [made[i : i + BATCH] for i in range(0, len(made), BATCH)]
        baseline = insert_rate(plain, batches, "no views")
        with_views = insert_rate(store, batches, "the sink's tables")
        for table in ("usage_events", "usage_hourly", "usage_daily", "usage_labels_hourly"):
            store.client.command(f"OPTIMIZE TABLE {database}.{table} FINAL")
        parts = on_disk(store)
    finally:
        store.client.command(f"DROP DATABASE IF EXISTS {database}")
        plain.client.command(f"DROP DATABASE IF EXISTS {plain.database}")
    events_rows, events_bytes, events_raw = parts["usage_events"]
    rollups = {t: v for t, v in parts.items() if t.startswith("usage_") and t != "usage_events"}
    rollup_bytes = sum(b for _, b, _ in rollups.values())
    gib = 1 << 30
    result = {
        "events": events_rows,
        "usage_events_bytes_per_event": round(events_bytes / events_rows, 1),
        "usage_events_compression": round(events_raw / events_bytes, 1),
        "rollups_bytes_per_event": round(rollup_bytes / events_rows, 1),
        "rollup_rows": {t: r for t, (r, _, _) in rollups.items()},
        "gib_per_billion_events": round((events_bytes + rollup_bytes) / events_rows * 1e9 / gib, 1),
        "insert_rows_per_s": round(with_views),
        "insert_rows_per_s_no_views": round(baseline),
        "views_share_of_insert_time": round(1 - with_views / baseline, 2),
    }
    write_result("storage", result)
    print(result)


if __name__ == "__main__":
    main()
