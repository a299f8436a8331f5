"""The ceilings under the pipeline's and the cap check's throughput on this machine, whatever the client.

In one run, on a topic of its own with the same 200k replayed events as bench/pipeline.py:
1. raw: a bare aiokafka consumer (getmany, no work): the baseline of bench/pipeline.py;
2. faust: an app configured as the worker (raw serializers, take_events(5,000, 20 ms), the same
   fetch and commit settings) whose agent only counts, in a process of its own;
3. redis: the server-side cost of the batched SETTLE script per event, of one RESERVE (org,
   department and user hard caps, every period; and with two tag scopes more, each with a hard cap) and
   of a trivial EVALSHA, from INFO commandstats:
   one Redis thread runs them, so 1e6 / microseconds bounds events or decisions per second. A
   reserve is measured one call at a time (Redis idles between calls: cold caches) and 50 in
   flight (Redis busy, as under load: the ceiling), beside RESERVE_FLOOR, the Redis commands a
   reserve cannot do without and no logic: the lower bound of this design on this Redis.
Writes bench/results/ceilings.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import write_result
from bench.pipeline import EVENTS, TRACE, produce, producer, raw_consume_rate
from enforcement import core
from enforcement.keys import KeyLayout, PeriodKeys
from enforcement.scripts import RESERVE, SETTLE
from enforcement.subject import Subject
from schemas.events import encode_event
from schemas.settings import Settings
from stack import manager
from workloads.generators import trace_events

AGENT = textwrap.dedent(
    """
    import os, sys, time
    import faust
    from streams import app as worker_app  # the worker's consumer settings (prompt fetches)

    topic_name, count, broker, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    app = faust.App(f"ceiling-{topic_name}-{time.time_ns()}", broker=f"kafka://{broker}", value_serializer="raw",
                    key_serializer="raw", web_enabled=False, topic_allow_declare=False,
                    topic_disable_leader=True, consumer_auto_offset_reset="earliest",
                    broker_commit_interval=0.5, broker_max_poll_records=10_000, stream_buffer_maxsize=50_000,
                    datadir=f"/tmp/faust-ceiling-{topic_name}")
    topic = app.topic(topic_name, value_type=bytes, key_type=bytes)
    seen = 0
    began = 0.0

    @app.agent(topic)
    async def count_only(stream):
        global seen, began
        async for events in stream.take_events(5000, within=0.02):
            if not began:
                began = time.perf_counter()
            seen += len(events)
            if seen >= count:
                with open(out, "w") as handle:  # Faust takes over a worker's stdout
                    handle.write(f"{seen / (time.perf_counter() - began):.0f}")
                os._exit(0)  # the number is out; no graceful Faust shutdown needed

    worker = faust.Worker(app, loglevel="ERROR", quiet=True)
    worker.execute_from_commandline()
    """
)


def faust_rate(bootstrap: str, topic: str, count: int) -> float:
    out = Path(f"/tmp/{topic}.rate")
    proc = subprocess.run(
        [sys.executable, "-c", AGENT, topic, str(count), bootstrap.split(",", maxsplit=1)[0], str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ},
        check=False,
    )
    if out.exists():
        return float(out.read_text())
    raise RuntimeError(f"the Faust agent did not finish: {proc.stdout[-500:]} {proc.stderr[-2000:]}")


def settle_us_per_event(url: str) -> float:
    client = redis.Redis.from_url(url)
    layout = KeyLayout(f"c{uuid.uuid4().hex[:8]}")
    client.hset(layout.org_settings("acme"), mapping={"tz": "UTC", "loaded": "bench"})  # its state is loaded
    script = client.register_script(SETTLE)
    now = datetime.now(UTC)
    periods = PeriodKeys.at(now, "UTC")
    before = client.info("commandstats").get("cmdstat_evalsha", {"usec": 0})["usec"]
    events = 0
    for batch in range(40):
        items = [
            core.SettleItem(
                Subject.unchecked("acme", f"u{i % 50}", "eng", "chat", "gpt-4o", "openai"),
                f"e{batch}-{i}",
                now,
                1000,
                periods,
                None,
                0,
                batch * 500 + i,
            )
            for i in range(500)
        ]
        call = core.settle_batch_call(layout, items, core.DUPLICATE_WINDOW_S)
        script(keys=call.keys, args=call.args)
        events += 500
    after = client.info("commandstats")["cmdstat_evalsha"]["usec"]
    for key in client.scan_iter(f"{layout.prefix}:*", count=1000):
        client.delete(key)
    return (after - before) / events


# What bounds a reserve in this design: the Redis commands a reserve over three hard caps cannot do
# without (the clock, the loaded mark, due reservations, the budgets, the request's record, each cap's
# spend, the reservations held, the admission's writes), with no logic between them.
RESERVE_FLOOR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HEXISTS', KEYS[9], 'loaded') == 0 then return {5, 0, 0, now} end
redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 64)
redis.call('HMGET', KEYS[1], 'org/acme/monthly', 'department/eng/daily', 'user/ada/monthly')
redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HMGET', KEYS[2], 'org/acme', 'department/eng', 'user/ada')
redis.call('HGET', KEYS[8], 'org/acme')
redis.call('HGET', KEYS[6], 'department/eng')
redis.call('HGET', KEYS[8], 'user/ada')
redis.call('HINCRBY', KEYS[5], 'admitted', 1)
redis.call('HSET', KEYS[2], 'org/acme', ARGV[2], 'department/eng', ARGV[2], 'user/ada', ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], 'record')
redis.call('ZADD', KEYS[4], now + 60000, ARGV[1])
return {1, 0, 0, now}
"""


def reserve_us(url: str) -> dict[str, float]:
    """Server-side microseconds of one reserve over three hard caps, of a trivial EVALSHA, and of the
    design's floor (``RESERVE_FLOOR``): each one call at a time (Redis idles between calls, as with one
    client) and 50 in flight (Redis busy, as under load)."""
    from enforcement.budget_store import apply_budgets  # noqa: PLC0415
    from enforcement.client import CapClient  # noqa: PLC0415
    from schemas.budget_file import parse_budget_file  # noqa: PLC0415

    client = redis.Redis.from_url(url)
    prefix = f"c{uuid.uuid4().hex[:8]}"
    parsed = parse_budget_file(
        "orgs: {acme: {tags: [project, customer]}}\n"
        "budgets:\n"
        '  - {org: acme, scope: org, period: monthly, limit: "100000", mode: hard}\n'
        '  - {org: acme, scope: department, id: eng, period: daily, limit: "10000", mode: hard}\n'
        '  - {org: acme, scope: user, id: ada, period: monthly, limit: "10000", mode: hard}\n'
        '  - {org: acme, scope: tag, id: project=apollo, period: monthly, limit: "10000", mode: hard}\n'
        '  - {org: acme, scope: tag, id: customer=c-1, period: monthly, limit: "10000", mode: hard}\n'
    )
    apply_budgets(client, KeyLayout(prefix), parsed.orgs.values(), parsed.budgets)
    caps = CapClient(client, key_prefix=prefix)
    subject = Subject("acme", "ada", department_id="eng", feature="chat", model="gpt-4o", provider="openai")
    tagged = Subject(
        "acme", "ada", "eng", "chat", "gpt-4o", "openai", tags=(("project", "apollo"), ("customer", "c-1"))
    )
    periods = PeriodKeys.at(datetime.now(UTC), "UTC")
    layout = KeyLayout(prefix)
    scripts = {
        "reserve": client.script_load(RESERVE),
        "floor": client.script_load(RESERVE_FLOOR),
        "trivial": client.script_load("return 1"),
    }

    def server_us(call: object, n: int = 3000) -> float:
        before = client.info("commandstats").get("cmdstat_evalsha", {"usec": 0, "calls": 0})
        for i in range(n):
            call(i)  # type: ignore[operator]
        after = client.info("commandstats")["cmdstat_evalsha"]
        return (after["usec"] - before["usec"]) / (after["calls"] - before["calls"])

    def in_flight(name: str, tag: str, n: int = 3000, depth: int = 50, who: Subject = subject) -> float:
        calls = [core.reserve_call(layout, who, f"{tag}{i}", 1000, 60_000, periods) for i in range(n)]
        before = client.info("commandstats").get("cmdstat_evalsha", {"usec": 0, "calls": 0})
        for start in range(0, n, depth):
            pipe = client.pipeline(transaction=False)
            for call in calls[start : start + depth]:
                pipe.evalsha(scripts[name], len(call.keys), *call.keys, *call.args)
            pipe.execute()
        after = client.info("commandstats")["cmdstat_evalsha"]
        return (after["usec"] - before["usec"]) / (after["calls"] - before["calls"])

    call = core.reserve_call(layout, subject, "t", 1000, 60_000, periods)

    def like_reserve(name: str, i: int) -> object:
        return client.evalsha(scripts[name], len(call.keys), *call.keys, f"f{i}", *call.args[1:])

    result = {
        "reserve": server_us(lambda i: caps.reserve(subject, f"r{i}", 1000)),
        "reserve_two_tags": server_us(lambda i: caps.reserve(tagged, f"g{i}", 1000)),
        "trivial": server_us(lambda i: client.evalsha(scripts["trivial"], 0)),
        "trivial_same_args": server_us(lambda i: like_reserve("trivial", i)),
        "floor": server_us(lambda i: like_reserve("floor", i)),
        "reserve_in_flight": in_flight("reserve", "p"),
        "reserve_two_tags_in_flight": in_flight("reserve", "h", who=tagged),
        "floor_in_flight": in_flight("floor", "q"),
        "trivial_in_flight": in_flight("trivial", "s"),
    }
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        client.delete(key)
    return result


def main() -> None:
    base = Settings()
    manager.up(base.stack)
    bootstrap = base.kafka.bootstrap
    tag = f"c{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    events = list(trace_events(TRACE.read_text(), EVENTS, start=now - timedelta(minutes=10), speedup=8.0, prefix=tag))
    payloads = [(e.org_id.encode(), encode_event(e)) for e in events]
    topic = f"{tag}.ceiling"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=8, replication_factor=1)]).values():
        future.result(30)
    produce(producer(bootstrap), topic, payloads)
    time.sleep(1)
    raw = raw_consume_rate(bootstrap, topic, EVENTS)
    faust = faust_rate(bootstrap, topic, EVENTS)
    settle_us = settle_us_per_event(base.redis.url)
    reserve = reserve_us(base.redis.url)
    write_result(
        "ceilings",
        {
            "events": EVENTS,
            "raw_consume_events_per_s": round(raw),
            "faust_consume_only_events_per_s": round(faust),
            "faust_over_raw": round(faust / raw, 3),
            "redis_settle_us_per_event": round(settle_us, 2),
            "redis_settle_ceiling_events_per_s": round(1e6 / settle_us),
            "pipeline_target_events_per_s": 20_000,
            "pipeline_target_over_raw": 0.3,
            "redis_reserve_us": round(reserve["reserve"], 2),
            "redis_reserve_two_tags_us": round(reserve["reserve_two_tags"], 2),
            "redis_reserve_two_tags_in_flight_us": round(reserve["reserve_two_tags_in_flight"], 2),
            "two_tags_over_reserve_in_flight": round(
                reserve["reserve_two_tags_in_flight"] / reserve["reserve_in_flight"], 3
            ),
            "redis_trivial_evalsha_us": round(reserve["trivial"], 2),
            "redis_trivial_evalsha_reserve_args_us": round(reserve["trivial_same_args"], 2),
            "redis_reserve_floor_us": round(reserve["floor"], 2),
            "redis_reserve_in_flight_us": round(reserve["reserve_in_flight"], 2),
            "redis_reserve_floor_in_flight_us": round(reserve["floor_in_flight"], 2),
            "redis_trivial_evalsha_in_flight_us": round(reserve["trivial_in_flight"], 2),
            "redis_reserve_ceiling_decisions_per_s": round(1e6 / reserve["reserve_in_flight"]),
        },
    )


if __name__ == "__main__":
    main()
