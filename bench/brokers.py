"""End-to-end events/s on three Kafka brokers against one, in the same run.

The shared stack's single broker and a KRaft cluster of three started here (a folder and ports of their own,
the jars from the same cache) take turns: 1, 3, 1, 3. Each turn has its own topics, Redis prefix and
ClickHouse database; a worker consumes while 100k replayed trace events are produced as fast as possible
(idempotent, ``acks=all``: on three brokers a write waits for a second replica); the clock runs from the
first send until every event is counted in Redis and stored in ClickHouse. Writes bench/results/brokers.json.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import clickhouse_connect
import redis
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import write_result
from bench.pipeline import PRICES, TRACE, end_to_end, producer, worker_running
from bus.topic_admin import ensure_topics
from bus.topics import Topics
from enforcement.keys import KeyLayout
from schemas.config_records import prices_overrides_record
from schemas.events import encode_event
from schemas.settings import Settings, StackSettings
from stack import manager
from stack.kafka_service import bootstrap_of
from workloads.generators import trace_events

EVENTS = 100_000
TURNS = 2  # of each layout, alternating


def free_base() -> int:
    """A port p with p .. p+5 free: three brokers and their controllers."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = int(sock.getsockname()[1])
        if base < 60_000 and all(_free(base + i) for i in range(6)):
            return base


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def one_turn(base: Settings, bootstrap: str) -> float:
    """One turn: events/s from the first send until all are in Redis and ClickHouse."""
    tag = f"b{uuid.uuid4().hex[:8]}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        metrics_port = sock.getsockname()[1]
    env = {
        **os.environ,
        "SPENDSTREAM_KAFKA__BOOTSTRAP": bootstrap,
        "SPENDSTREAM_KAFKA__TOPIC_PREFIX": f"{tag}.",
        "SPENDSTREAM_REDIS__KEY_PREFIX": tag,
        "SPENDSTREAM_CLICKHOUSE__DATABASE": tag,
        "SPENDSTREAM_METRICS_PORT": str(metrics_port),
    }
    topics = Topics(f"{tag}.")
    ensure_topics(bootstrap, topics)
    config = producer(bootstrap)
    record = prices_overrides_record(PRICES)
    config.produce(topics.config, key=record.key.encode(), value=record.value)
    config.flush(30)
    now = datetime.now(UTC)
    events = trace_events(TRACE.read_text(), EVENTS, start=now - timedelta(minutes=50), speedup=60.0, prefix=tag)
    payloads = [(e.org_id.encode(), encode_event(e)) for e in events]
    stats = redis.Redis.from_url(base.redis.url)
    stats_keys = [KeyLayout(tag).stats(org) for org in sorted({key.decode() for key, _ in payloads})]
    ch = clickhouse_connect.get_client(host=base.clickhouse.host, port=base.clickhouse.port)
    try:
        with worker_running(env, tag, metrics_port):
            return EVENTS / end_to_end(bootstrap, topics.usage, payloads, stats, stats_keys, ch, tag)[2]
    finally:
        AdminClient({"bootstrap.servers": bootstrap}).delete_topics([spec.name for spec in topics.specs()])
        ch.command(f"DROP DATABASE IF EXISTS {tag}")
        for key in stats.scan_iter(f"{tag}:*", count=1000):
            stats.delete(key)


def main() -> None:
    base = Settings()
    manager.up(base.stack)
    port = free_base()
    with tempfile.TemporaryDirectory(prefix="spendstream-kafka3-") as home:
        three: StackSettings = base.stack.model_copy(
            update={"home": Path(home), "kafka_brokers": 3, "kafka_port": port, "kafka_controller_port": port + 1}
        )
        print(f"starting three brokers on {bootstrap_of(three)}", file=sys.stderr)
        manager.up(three, ["kafka"])
        rates: dict[int, list[float]] = {1: [], 3: []}
        try:
            for turn in range(TURNS * 2):
                brokers = 1 if turn % 2 == 0 else 3
                bootstrap = base.kafka.bootstrap if brokers == 1 else bootstrap_of(three)
                rate = one_turn(base, bootstrap)
                rates[brokers].append(rate)
                print(f"turn {turn + 1}/{TURNS * 2}: {brokers} broker(s), {rate:,.0f} events/s", file=sys.stderr)
        finally:
            manager.down(three, ["kafka"])
    one, three_rates = sorted(rates[1]), sorted(rates[3])
    write_result(
        "brokers",
        {
            "events": EVENTS,
            "end_to_end_events_per_s_one_broker": [round(r) for r in rates[1]],
            "end_to_end_events_per_s_three_brokers": [round(r) for r in rates[3]],
            "three_over_one": round(sum(three_rates) / sum(one), 3),
        },
    )


if __name__ == "__main__":
    main()
