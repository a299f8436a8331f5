"""Local stack start times (cold and warm) and the embedded ClickHouse insert rate.

Cold: empty data folders and an empty jar cache (Maven resolves the broker again,
from its local repository when that is warm). Warm: the same folders, restarted.
Runs on its own ports and folders, beside any stack already up.
The insert baseline is a raw HTTP POST of the same Native payload, without the client.
Writes bench/results/stack.json.
"""

from __future__ import annotations

import http.client
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import clickhouse_connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import write_result
from schemas.settings import StackSettings
from stack import manager

ROWS = 100_000


def timed_up(settings: StackSettings) -> dict[str, float]:
    began = time.perf_counter()
    reports = manager.up(settings)
    total = time.perf_counter() - began
    return {"total_s": round(total, 2), **{f"{r.name}_s": round(r.seconds, 2) for r in reports}}


def insert_rate(port: int) -> dict[str, float]:
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, compress=False)
    client.command("CREATE DATABASE IF NOT EXISTS bench")
    client.command("DROP TABLE IF EXISTS bench.usage")
    client.command(
        "CREATE TABLE bench.usage (event_id String, org_id LowCardinality(String), user_id String, "
        "occurred_at DateTime64(6, 'UTC'), input_tokens UInt32, output_tokens UInt32, cost_nanos Int64) "
        "ENGINE = MergeTree ORDER BY (org_id, occurred_at)"
    )
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        (f"evt-{i:09d}", f"org-{i % 5}", f"user-{i % 500}", t0 + timedelta(milliseconds=i), i % 8000, i % 700, i * 13)
        for i in range(ROWS)
    ]
    columns = ["event_id", "org_id", "user_id", "occurred_at", "input_tokens", "output_tokens", "cost_nanos"]
    results = {}
    for name, compress in (("none", False), ("lz4", "lz4"), ("zstd", "zstd")):
        c = clickhouse_connect.get_client(host="127.0.0.1", port=port, compress=compress)
        best = float("inf")
        for _ in range(3):  # best of three: the first insert into a new table pays for warm-up
            c.command("TRUNCATE TABLE bench.usage")
            began = time.perf_counter()
            c.insert("bench.usage", rows, column_names=columns)
            best = min(best, time.perf_counter() - began)
            assert c.command("SELECT count() FROM bench.usage") == ROWS
        results[f"clickhouse_connect_{name}_rows_per_s"] = round(ROWS / best)
    native = client.raw_query("SELECT * FROM bench.usage", fmt="Native")
    client.command("TRUNCATE TABLE bench.usage")
    conn = http.client.HTTPConnection("127.0.0.1", port)
    began = time.perf_counter()
    conn.request("POST", "/?query=INSERT%20INTO%20bench.usage%20FORMAT%20Native", body=native)
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - began
    assert response.status == 200
    results["raw_http_native_rows_per_s"] = round(ROWS / elapsed)
    return results


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="spendstream-bench-") as tmp:
        settings = StackSettings(
            home=Path(tmp) / "home",
            cache=Path(tmp) / "cache",
            kafka_port=29092,
            kafka_controller_port=29093,
            redis_port=26379,
            clickhouse_port=28123,
        )
        try:
            cold = timed_up(settings)
            inserts = insert_rate(settings.clickhouse_port)
            manager.down(settings)
            warm = timed_up(settings)
        finally:
            manager.down(settings)
    write_result(
        "stack",
        {
            "cold_start": cold,
            "warm_start": warm,
            "cold_start_s": cold["total_s"],
            "warm_start_s": warm["total_s"],
            "insert_rows": ROWS,
            **inserts,
            "clickhouse_insert_rows_per_s": inserts["clickhouse_connect_none_rows_per_s"],
        },
    )


if __name__ == "__main__":
    main()
