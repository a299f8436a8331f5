"""Cap decision latency and throughput against the local Redis, with Redis's own baselines.

Measures, in one run:
- reserve and settle latency from one client (sync CapClient, sequential calls);
- the Redis PING round trip from the same client library (the floor of any call);
- decisions per second at 1, 8 and 32 concurrent clients (each client one request in flight,
  spread over worker processes with asyncio), and the throughput of a trivial EVALSHA
  ("return 1") from `redis-benchmark` at the same client counts;
- our reserve script driven by `redis-benchmark` itself (a C client, fresh request ids): the
  Redis-side ceiling of a three-scope check-and-reserve, to tell client cost from script cost.

The budgets are a hard cap on the org, the department and the user (large enough to admit
everything), so each decision checks and reserves three scopes: the real work of a proxy.
Starts the local stack if it is not up. Writes bench/results/enforcement.json.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import percentile, write_result
from enforcement import core
from enforcement.budget_store import apply_budgets
from enforcement.client import AsyncCapClient, CapClient
from enforcement.keys import KeyLayout, PeriodKeys
from enforcement.scripts import RESERVE
from enforcement.subject import Subject
from schemas import Budget, BudgetMode, Period, ScopeKind
from schemas.budgets import OrgConfig
from schemas.settings import Settings
from stack import manager
from tests.enforcement.settle import Settler

LATENCY_CALLS = 20_000
THROUGHPUT_SECONDS = 4.0
SUBJECT = Subject(org_id="bench", department_id="eng", user_id="ada", feature="chat", model="gpt-4o")
ESTIMATE = 1_000


def setup_budgets(client: redis.Redis, prefix: str) -> None:
    limit = 2**52
    apply_budgets(
        client,
        KeyLayout(prefix),
        [OrgConfig("bench")],
        [
            Budget("bench", ScopeKind.ORG, "bench", Period.MONTHLY, limit, BudgetMode.HARD),
            Budget("bench", ScopeKind.DEPARTMENT, "eng", Period.DAILY, limit, BudgetMode.HARD),
            Budget("bench", ScopeKind.USER, "ada", Period.MONTHLY, limit, BudgetMode.HARD),
        ],
    )


def micros(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {q: round(percentile(ordered, p) * 1e6, 1) for q, p in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))}


def latency(url: str, prefix: str) -> dict[str, dict[str, float]]:
    client = redis.Redis.from_url(url)
    caps = CapClient(client, key_prefix=prefix)
    settle = Settler(client, prefix)  # the settle script as the worker runs it, one event per call
    for i in range(2000):  # warm-up: scripts loaded, connection open, caches filled
        caps.reserve(SUBJECT, f"w{i}", ESTIMATE)
        settle(SUBJECT, f"we{i}", ESTIMATE, request_id=f"w{i}")
        client.ping()
    reserve, settled, ping = [], [], []
    for i in range(LATENCY_CALLS):
        t0 = time.perf_counter()
        client.ping()
        t1 = time.perf_counter()
        decision = caps.reserve(SUBJECT, f"r{i}", ESTIMATE)
        t2 = time.perf_counter()
        settle(SUBJECT, f"e{i}", ESTIMATE, request_id=f"r{i}")
        t3 = time.perf_counter()
        assert decision.allowed
        ping.append(t1 - t0)
        reserve.append(t2 - t1)
        settled.append(t3 - t2)
    client.close()
    return {"reserve": micros(reserve), "settle": micros(settled), "ping": micros(ping)}


def _worker(url: str, prefix: str, clients: int, seconds: float, start_at: float, out: multiprocessing.Queue) -> None:
    async def run() -> int:
        pool = aioredis.Redis.from_url(url, max_connections=clients + 2)
        caps = AsyncCapClient(pool, key_prefix=prefix)
        tag = uuid.uuid4().hex[:8]
        await caps.reserve(SUBJECT, f"warm-{tag}", ESTIMATE)
        done = 0
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        deadline = time.perf_counter() + seconds

        async def one(index: int) -> None:
            nonlocal done
            n = 0
            while time.perf_counter() < deadline:
                decision = await caps.reserve(SUBJECT, f"{tag}-{index}-{n}", ESTIMATE)
                assert decision.allowed
                n += 1
                done += 1

        await asyncio.gather(*(one(i) for i in range(clients)))
        await pool.aclose()
        return done

    out.put(asyncio.run(run()))


def decisions_per_s(url: str, prefix: str, clients: int) -> float:
    processes = 1 if clients == 1 else 2
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    start_at = time.time() + 2.0
    shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(target=_worker, args=(url, prefix, share, THROUGHPUT_SECONDS, start_at, out)) for share in shares
    ]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join()
    return total / THROUGHPUT_SECONDS


def evalsha_per_s(port: int, clients: int) -> float:
    sha = subprocess.run(
        ["redis-cli", "-p", str(port), "script", "load", "return 1"], capture_output=True, text=True, check=True
    ).stdout.strip()
    result = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-c",
            str(clients),
            "-n",
            str(100_000 if clients == 1 else 300_000),
            "-q",
            "evalsha",
            sha,
            "0",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.findall(r"([\d.]+) requests per second", result.stdout)
    return float(match[-1])


def reserve_script_per_s(url: str, port: int, prefix: str, clients: int) -> float:
    """Our reserve script driven by redis-benchmark's C client: the Redis-side ceiling of a decision."""
    sha = redis.Redis.from_url(url).script_load(RESERVE)
    call = core.reserve_call(KeyLayout(prefix), SUBJECT, "x", ESTIMATE, 60_000, PeriodKeys.at(datetime.now(UTC), "UTC"))
    args = [str(a) for a in call.args]
    args[0] = "__rand_int__"  # a fresh request id per call
    result = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-r",
            "1000000000",
            "-c",
            str(clients),
            "-n",
            "100000",
            "-q",
            "evalsha",
            sha,
            str(len(call.keys)),
            *call.keys,
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(re.findall(r"([\d.]+) requests per second", result.stdout)[-1])


def main() -> None:
    settings = Settings()
    manager.up(settings.stack)
    url, port = settings.redis.url, settings.stack.redis_port
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(url)
    setup_budgets(client, prefix)
    try:
        lat = latency(url, prefix)
        throughput = {}
        for clients in (1, 8, 32):
            ours = decisions_per_s(url, prefix, clients)
            baseline = evalsha_per_s(port, clients)
            ceiling = reserve_script_per_s(url, port, prefix, clients)
            throughput[str(clients)] = {
                "decisions_per_s": round(ours),
                "evalsha_per_s": round(baseline),
                "ratio": round(ours / baseline, 3),
                "reserve_script_from_c_client_per_s": round(ceiling),
            }
    finally:
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
    write_result(
        "enforcement",
        {
            "reserve_p50_us": lat["reserve"]["p50"],
            "reserve_p99_us": lat["reserve"]["p99"],
            "reserve_p999_us": lat["reserve"]["p999"],
            "settle_p50_us": lat["settle"]["p50"],
            "settle_p99_us": lat["settle"]["p99"],
            "ping_p50_us": lat["ping"]["p50"],
            "ping_p99_us": lat["ping"]["p99"],
            "reserve_p99_over_ping_p99": round(lat["reserve"]["p99"] / lat["ping"]["p99"], 2),
            "throughput": throughput,
            "scopes_checked_per_decision": 3,
        },
    )


if __name__ == "__main__":
    main()
