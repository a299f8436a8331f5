"""Memory of the duplicate window: Redis bytes per remembered event, and what 24 h at 1,000 events/s costs.

Applies 200,000 events of one org through the real settle script (each fingerprint is kept in the
generation of its arrival, with its content digest and origin), then sums `MEMORY USAGE` over the
window's keys: once over the real shard count (the density of 200,000 events a half day, ~4.6 a second),
once over as few shards as 1,000 events/s for a half day packs into each. The baseline in the same run is the same
number of plain `SET key 1` entries (one key per event), the naive layout. A fingerprint is kept for one
to one and a half windows after its arrival, so the window's memory is up to 1.5 days' worth.
Writes bench/results/dedup_memory.json.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import write_result
from enforcement import core
from enforcement.keys import SEEN_SHARDS, KeyLayout, PeriodKeys
from enforcement.scripts import SETTLE
from enforcement.subject import Subject
from schemas.settings import Settings
from stack import manager

EVENTS = 200_000
PER_DAY_AT_1000 = 1_000 * 86_400


def memory_of(client: redis.Redis, pattern: str) -> tuple[int, int]:
    total = keys = 0
    for key in client.scan_iter(pattern, count=1000):
        total += int(client.memory_usage(key, samples=0) or 0)
        keys += 1
    return total, keys


def measure(client: redis.Redis, shards: int) -> dict[str, object]:
    prefix = f"mem{uuid.uuid4().hex[:6]}"
    layout = KeyLayout(prefix, seen_shards=shards)
    script = client.register_script(SETTLE)
    client.hset(layout.org_settings("acme"), mapping={"tz": "UTC", "loaded": "bench"})  # its state is loaded
    subject = Subject(
        org_id="acme", department_id="eng", user_id="ada", feature="chat", model="gpt-4o", provider="openai"
    )
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    periods = PeriodKeys.at(base, "UTC")
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(EVENTS):
            at = base + timedelta(milliseconds=i)
            digest = i.to_bytes(8, "big")  # any 8 bytes: as much room as a real content digest
            call = core.settle_call(
                layout, subject, f"evt-{uuid.UUID(int=i)}", at, 1, periods, None, 0, i, digest=digest
            )
            script(keys=call.keys, args=call.args, client=pipe)
            if i % 5_000 == 4_999:
                pipe.execute()
        pipe.execute()
        seen_bytes, seen_keys = memory_of(client, f"{prefix}:*:seen:*")
        for i in range(EVENTS):
            pipe.set(f"{prefix}:naive:evt-{uuid.UUID(int=i)}", 1, ex=86_400)
            if i % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()
        naive_bytes, _ = memory_of(client, f"{prefix}:naive:*")
        encoding = client.object("encoding", next(client.scan_iter(f"{prefix}:*:seen:*")))
    finally:
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
    return {
        "hash_keys": seen_keys,
        "entries_per_hash": round(EVENTS / seen_keys),
        "hash_encoding": encoding.decode() if isinstance(encoding, bytes) else encoding,
        "bytes_per_event": round(seen_bytes / EVENTS, 1),
        "naive_set_bytes_per_event": round(naive_bytes / EVENTS, 1),
    }


def main() -> None:
    settings = Settings()
    manager.up(settings.stack)
    client = redis.Redis.from_url(settings.redis.url)
    # 200k events in one generation (half a day) over the real shards: the density of ~4.6 events/s.
    sparse = measure(client, SEEN_SHARDS)
    # The same 200k over fewer shards, as densely packed as 1,000 events/s (43.2M a half day) on the real ones.
    dense = measure(client, max(1, round(SEEN_SHARDS * EVENTS / (PER_DAY_AT_1000 // 2))))
    per_event = float(dense["bytes_per_event"])  # type: ignore[arg-type]
    naive = float(dense["naive_set_bytes_per_event"])  # type: ignore[arg-type]
    write_result(
        "dedup_memory",
        {
            "events": EVENTS,
            "window_hours": core.DUPLICATE_WINDOW_S // 3600,
            "shards_per_org_generation": SEEN_SHARDS,
            "hash_max_listpack_entries": int(
                client.config_get("hash-max-listpack-entries")["hash-max-listpack-entries"]
            ),
            "at_5_per_s": sparse,  # one org's half day, real shard count
            "at_1000_per_s": dense,
            "bytes_per_event": per_event,
            "gib_for_24h_at_1000_per_s": round(per_event * PER_DAY_AT_1000 / 2**30, 2),
            "gib_at_most_at_1000_per_s": round(1.5 * per_event * PER_DAY_AT_1000 / 2**30, 2),  # 3 half days
            "naive_gib_for_24h_at_1000_per_s": round(naive * PER_DAY_AT_1000 / 2**30, 2),
        },
    )


if __name__ == "__main__":
    main()
