"""End-to-end pipeline throughput and freshness on the local stack, against a raw-consumer baseline.

In one run, on its own topics, Redis prefix and ClickHouse database:
1. baselines: 200k replayed trace events consumed by a bare aiokafka consumer (no work), and by a
   Faust agent that only counts them, with the worker's consumer settings (``bench/ceilings.py``);
2. end-to-end: the worker running, the same 200k events produced as fast as possible; the clock
   runs from the first send until every event is counted in Redis and stored in ClickHouse;
3. freshness: events produced at a steady 2,000/s for 15 s; every 20th is a probe with a user of its
   own, and the time from its send until its Redis counter shows it is recorded.
Starts the local stack if it is not up. Writes bench/results/pipeline.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import redis
from aiokafka import AIOKafkaConsumer
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import percentile, write_result
from bus.topic_admin import ensure_topics
from bus.topics import Topics
from enforcement.keys import KeyLayout, PeriodKeys
from schemas.config_records import prices_overrides_record
from schemas.events import UsageEvent, encode_event
from schemas.settings import Settings
from stack import manager
from workloads.generators import DEFAULT_TRACE, trace_events

EVENTS = 200_000
RATE = 2_000
FRESHNESS_SECONDS = 15
TRACE = DEFAULT_TRACE
PRICES = (Path(__file__).resolve().parents[1] / "examples" / "prices.yaml").read_text()


def producer(bootstrap: str, linger_ms: int = 5) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
        }
    )


def produce(p: Producer, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    for key, value in payloads:
        while True:
            try:
                p.produce(topic, key=key, value=value)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(120)


def raw_consume_rate(bootstrap: str, topic: str, count: int) -> float:
    async def run() -> float:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"raw-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=10_000,
        )
        await consumer.start()
        seen = 0
        began = None
        try:
            while seen < count:
                batches = await consumer.getmany(timeout_ms=5_000, max_records=10_000)
                if began is None and batches:
                    began = time.perf_counter()
                seen += sum(len(records) for records in batches.values())
        finally:
            await consumer.stop()
        return seen / (time.perf_counter() - (began or time.perf_counter()))

    return asyncio.run(run())


def settled(client: redis.Redis, stats_keys: list[str]) -> int:
    """Events the settle script has counted (applied, or found duplicate) in these orgs' stats hashes."""
    pipe = client.pipeline(transaction=False)
    for key in stats_keys:
        pipe.hmget(key, "settled", "duplicate")
    return sum(int(v or 0) for pair in pipe.execute() for v in pair)


def metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
    except OSError:
        pass
    return -1.0


def produce_steady(
    bootstrap: str, topic: str, tag: str, payloads: list[tuple[bytes, bytes]], sends: multiprocessing.Queue
) -> None:
    """RATE events a second for FRESHNESS_SECONDS; every 20th is a probe with a user of its own."""
    p = producer(bootstrap, linger_ms=5)  # as a proxy would: a few ms of batching
    # A proxy's producer is long-lived: connected, with its idempotent producer id, before the clock starts
    # (a new one holds its first half second of sends while it gets them, which is not the pipeline's delay).
    key, value = payloads[0]
    p.produce(topic, key=key, value=value.replace(b'"event_id":"', f'"event_id":"{tag}-warm-'.encode(), 1))
    p.flush(30)
    total = RATE * FRESHNESS_SECONDS
    t0 = time.time()
    sends.put(("start", t0))
    for i in range(total):
        delay = t0 + i / RATE - time.time()
        if delay > 0:
            time.sleep(delay)
        if i % 20 == 0:
            event = UsageEvent(
                event_id=f"{tag}-probe-{i}",
                occurred_at=datetime.now(UTC),
                org_id="acme",
                department_id="eng",
                user_id=f"probe{i}",
                feature="chat",
                provider="openai",
                model="gpt-4o",
                input_tokens=100,
                output_tokens=10,
            )
            p.produce(topic, key=b"acme", value=encode_event(event))
            sends.put((f"probe{i}", time.time()))
        else:
            key, value = payloads[i % len(payloads)]
            p.produce(topic, key=key, value=value.replace(b'"event_id":"', f'"event_id":"s{i}-'.encode(), 1))
        p.poll(0)
    p.flush(30)
    sends.put((None, total / (time.time() - t0)))


def watch(redis_url: str, tag: str, sends: multiprocessing.Queue, results: multiprocessing.Queue) -> None:
    """Poll Redis for each probe's counter and record when it first shows.

    Which probes to poll follows from the schedule (probe i is due at t0 + i / RATE), not from the
    queue of send times, so a slow queue cannot delay an observation; the send times are joined at the end."""
    client = redis.Redis.from_url(redis_url)
    layout = KeyLayout(tag)
    user, t0 = sends.get(timeout=60)
    assert user == "start"
    probes = [f"probe{i}" for i in range(0, RATE * FRESHNESS_SECONDS, 20)]
    seen: dict[str, float] = {}
    key = layout.spent("acme", PeriodKeys.at(datetime.now(UTC), "UTC"))[0]
    deadline = t0 + FRESHNESS_SECONDS + 15
    while len(seen) < len(probes) and time.time() < deadline:
        due = int((time.time() - t0) * RATE) + 1
        pending = [p for i, p in enumerate(probes) if i * 20 <= due and p not in seen]
        if pending:
            values = client.hmget(key, [f"user/{p}" for p in pending])
            now = time.time()
            for probe, value in zip(pending, values, strict=True):
                if value is not None:
                    seen[probe] = now
        time.sleep(0.001)
    sent: dict[str, float] = {}
    rate = 0.0
    while True:
        user, value = sends.get(timeout=60)
        if user is None:
            rate = value
            break
        sent[user] = value
    delays = sorted((seen[p] - sent[p]) * 1000 for p in sent if p in seen)
    results.put((delays, rate, len(sent)))


@contextlib.contextmanager
def worker_running(env: dict[str, str], tag: str, metrics_port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A stream worker on the run's settings, consuming (its metrics answer); SIGTERMed afterwards."""
    log = open(f"/tmp/{tag}-worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "admin.cli", "worker", "--metrics-loopback"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        while metric(metrics_port, "spendstream_events_consumed_total") < 0:
            time.sleep(0.2)
        time.sleep(2)
        yield worker
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()


def end_to_end(
    bootstrap: str,
    topic: str,
    payloads: list[tuple[bytes, bytes]],
    stats: redis.Redis,
    stats_keys: list[str],
    ch: Any,
    database: str,
) -> tuple[float, float, float]:
    """Produce every payload as fast as possible; seconds from the first send until all are produced, all
    counted in Redis and all stored in ClickHouse. Applied events are counted from Redis (the settle script's
    per-org counters), not from the worker's /metrics: a scrape costs the worker 10-15 ms of CPU, and even
    at 4 Hz scrapes took 6% of the worker's samples in a profile of this run."""
    began = time.perf_counter()
    produce(producer(bootstrap), topic, payloads)
    produced_s = time.perf_counter() - began
    while settled(stats, stats_keys) < len(payloads):
        time.sleep(0.05)
    applied_s = time.perf_counter() - began
    while int(ch.command(f"SELECT count() FROM {database}.usage_events")) < len(payloads):
        time.sleep(0.05)
    return produced_s, applied_s, time.perf_counter() - began


def main() -> None:
    base = Settings()
    manager.up(base.stack)
    tag = f"b{uuid.uuid4().hex[:8]}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        metrics_port = sock.getsockname()[1]
    env = {
        **os.environ,
        "SPENDSTREAM_KAFKA__TOPIC_PREFIX": f"{tag}.",
        "SPENDSTREAM_REDIS__KEY_PREFIX": tag,
        "SPENDSTREAM_CLICKHOUSE__DATABASE": tag,
        "SPENDSTREAM_METRICS_PORT": str(metrics_port),
    }
    topics = Topics(f"{tag}.")
    bootstrap = base.kafka.bootstrap
    ensure_topics(bootstrap, topics)
    config = producer(bootstrap)
    record = prices_overrides_record(PRICES)
    config.produce(topics.config, key=record.key.encode(), value=record.value)
    config.flush(30)

    # 200k events are 22.7 h of the trace: compressed 30 times they occurred in the last 50 minutes (the worker
    # refuses events more than an hour ahead of its clock)
    now = datetime.now(UTC)
    events = list(trace_events(TRACE.read_text(), EVENTS, start=now - timedelta(minutes=50), speedup=30.0, prefix=tag))
    payloads = [(e.org_id.encode(), encode_event(e)) for e in events]
    stats_keys = [KeyLayout(tag).stats(org) for org in sorted({e.org_id for e in events})]
    stats = redis.Redis.from_url(base.redis.url)

    # 1. the baseline: a bare consumer of the same events
    baseline_topic = f"{tag}.baseline"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(baseline_topic, num_partitions=topics.usage_partitions, replication_factor=1)]
    ).values():
        future.result(30)
    produce(producer(bootstrap), baseline_topic, payloads)
    raw_rate = raw_consume_rate(bootstrap, baseline_topic, EVENTS)
    print(f"raw consume: {raw_rate:,.0f} events/s", file=sys.stderr)
    from bench.ceilings import faust_rate  # noqa: PLC0415 - it imports this module

    faust_rate_s = faust_rate(bootstrap, baseline_topic, EVENTS)  # a Faust agent that only counts
    print(f"Faust consume-only: {faust_rate_s:,.0f} events/s", file=sys.stderr)

    # 2. end to end
    ch = clickhouse_connect.get_client(host=base.clickhouse.host, port=base.clickhouse.port)
    try:
        with worker_running(env, tag, metrics_port):
            produced_s, applied_s, stored_s = end_to_end(bootstrap, topics.usage, payloads, stats, stats_keys, ch, tag)
            e2e_rate = EVENTS / stored_s
            print(
                f"end to end: {e2e_rate:,.0f} events/s (produced in {produced_s:.1f} s, Redis done at "
                f"{applied_s:.1f} s, ClickHouse at {stored_s:.1f} s)",
                file=sys.stderr,
            )

            # 3. freshness at a steady rate: a producer process and a watcher process, so neither's
            #    pacing or polling delays the other's clock readings
            ctx = multiprocessing.get_context("spawn")
            sends: multiprocessing.Queue = ctx.Queue()
            results: multiprocessing.Queue = ctx.Queue()
            watcher = ctx.Process(target=watch, args=(base.redis.url, tag, sends, results))
            watcher.start()
            steady = ctx.Process(
                target=produce_steady, args=(bootstrap, topics.usage, tag, payloads[: RATE * 2], sends)
            )
            steady.start()
            steady.join()
            delays, achieved_rate, probes = results.get(timeout=120)
            watcher.join(30)
    finally:
        admin.delete_topics([baseline_topic, *(spec.name for spec in topics.specs())])
        ch.command(f"DROP DATABASE IF EXISTS {tag}")
        client = redis.Redis.from_url(base.redis.url)
        for key in client.scan_iter(f"{tag}:*", count=1000):
            client.delete(key)

    write_result(
        "pipeline",
        {
            "events": EVENTS,
            "end_to_end_events_per_s": round(e2e_rate),
            "redis_applied_events_per_s": round(EVENTS / applied_s),
            "raw_consume_events_per_s": round(raw_rate),
            "end_to_end_over_raw": round(e2e_rate / raw_rate, 3),
            "faust_consume_only_events_per_s": round(faust_rate_s),
            "end_to_end_over_faust": round(e2e_rate / faust_rate_s, 3),
            "freshness_rate_events_per_s": round(achieved_rate),
            "freshness_probes": probes,
            "freshness_probes_seen": len(delays),
            "freshness_p50_ms": round(percentile(delays, 0.5), 1),
            "freshness_p99_ms": round(percentile(delays, 0.99), 1),
            "freshness_max_ms": round(delays[-1], 1) if delays else None,
        },
    )


if __name__ == "__main__":
    main()
