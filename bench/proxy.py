"""What the LiteLLM hook costs a real LiteLLM proxy, per request.

Three LiteLLM proxies (from ``.venv-litellm``, mock responses, LiteLLM's bundled price map), the same
except for their callbacks: none; a no-op ``CustomLogger`` with the same hooks as ours; and
spendstream's hook (reserve before the call, the usage event to Kafka after it). Keys are checked by
a custom auth module that gives each its org, team and user, as a key database would. A stream
worker consumes the usage topic throughout. In interleaved rounds, each proxy answers ``REQUESTS``
chat completions at ``CONCURRENCY`` in flight; per round and proxy: p50 and p99 latency, requests/s,
and the proxy process's own CPU time per request (user + system, from /proc), which the noise of a
shared machine touches least. The figures are the median over rounds.

Then, to see the hook's own cost without the noise of three proxies and a worker sharing two cores,
the hook is called directly in LiteLLM's environment, 3,000 times in a row (a reserve before, a usage
event after): ``hook_in_process_cpu_ms_per_request`` is the process's CPU time per request (Kafka's
threads included), ``hook_in_process_wall_ms_per_request`` the time per request, one at a time.

Writes bench/results/proxy.json with, against the no-op callback: ``hook_added_p50_ms``,
``hook_added_p99_ms``, ``hook_rps_ratio`` and ``hook_added_cpu_ms_per_request``. Targets: added CPU
<= 0.5 ms per request, added p50 <= 1 ms, requests/s >= 0.95x.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import redis

from bench._common import percentile, process_cpu_s, write_result
from bus.topic_admin import ensure_topics
from bus.topics import Topics
from enforcement.budget_store import apply_budgets
from enforcement.keys import KeyLayout
from schemas import Budget, BudgetMode, Period, ScopeKind
from schemas.budgets import OrgConfig
from schemas.settings import Settings
from sinks.usage_store import UsageStore
from stack import manager

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 9
REQUESTS = 600
CONCURRENCY = 8
KEYS = {f"sk-bench-{i:03d}": f"user{i:03d}" for i in range(16)}
CUSTOM_AUTH = """
from fastapi import Request
from litellm.proxy._types import UserAPIKeyAuth

KEYS = {KEYS!r}


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    key = api_key.removeprefix("Bearer ").strip()
    if key not in KEYS:
        raise Exception("unknown key")
    return UserAPIKeyAuth(api_key=key, user_id=KEYS[key], team_id="eng", org_id="acme")
"""
NOOP = """
from litellm.integrations.custom_logger import CustomLogger


class Noop(CustomLogger):
    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        return data

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        return None

    async def async_post_call_failure_hook(self, *args, **kwargs):
        return None


handler = Noop()
"""
CONFIG = """
model_list:
  - model_name: team-default
    litellm_params:
      model: openai/gpt-4o
      api_key: sk-not-used
      mock_response: "Hello from the mock."
{callbacks}
general_settings:
  master_key: sk-bench-master-key
  custom_auth: custom_auth.user_api_key_auth
"""
CALLBACKS = {
    "none": "",
    "noop": "litellm_settings:\n  callbacks: noop_logger.handler",
    "hook": "litellm_settings:\n  callbacks: integrations.litellm_hook.handler",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _round(port: int) -> tuple[list[float], float]:
    keys = list(KEYS)
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(REQUESTS):
        queue.put_nowait(i)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=CONCURRENCY)) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                began = time.perf_counter()
                answer = await client.post(
                    f"http://127.0.0.1:{port}/chat/completions",
                    headers={"Authorization": f"Bearer {keys[i % len(keys)]}"},
                    json={"model": "team-default", "messages": [{"role": "user", "content": f"hi {i}"}],
                          "max_tokens": 20},
                )  # fmt: skip
                latencies.append(time.perf_counter() - began)
                if answer.status_code != 200:
                    raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return latencies, time.perf_counter() - began


IN_PROCESS = """
import asyncio, sys, time, uuid
import uvloop
from datetime import datetime, timedelta, timezone
import litellm
from litellm.proxy._types import UserAPIKeyAuth
from integrations.litellm_hook import handler

N = int(sys.argv[1])


async def main():
    key = UserAPIKeyAuth(api_key="sk-bench-000", token="abc123", user_id="user000", team_id="eng", org_id="acme")
    response = litellm.ModelResponse(usage=litellm.Usage(prompt_tokens=10, completion_tokens=20, total_tokens=30))

    async def one(i):
        data = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"hi {i}"}], "max_tokens": 20}
        data = await handler.async_pre_call_hook(key, None, data, "completion")
        end = datetime.now(timezone.utc)
        kwargs = {"litellm_params": {"metadata": data["metadata"]}, "custom_llm_provider": "openai",
                  "model": "gpt-4o", "response_cost": 0.000225, "litellm_call_id": str(uuid.uuid4())}
        await handler.async_log_success_event(kwargs, response, end - timedelta(milliseconds=5), end)

    for i in range(200):  # warm-up: connections, scripts
        await one(i)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(N):
        await one(i)
    handler.producer.flush(10)
    print(f"{(time.process_time() - cpu) * 1000 / N:.4f} {(time.perf_counter() - wall) * 1000 / N:.4f}")


uvloop.run(main())  # the proxy serves on uvloop (uvicorn's loop="uvloop")
"""


def in_process(litellm: Path, env: dict[str, str], folder: Path, n: int = 3000) -> tuple[float, float]:
    """The hook's own cost per request, called directly in LiteLLM's environment (a reserve and a usage
    event, sequentially): CPU ms of the whole process (Kafka's threads included), and wall ms."""
    python = litellm.parent / "python"
    done = subprocess.run(
        [str(python), "-c", IN_PROCESS, str(n)],
        env={**env, "PYTHONPATH": f"{ROOT}:{folder}"}, capture_output=True, text=True, check=True, cwd=folder,
    )  # fmt: skip
    cpu_ms, wall_ms = (float(x) for x in done.stdout.strip().splitlines()[-1].split())
    return cpu_ms, wall_ms


def main() -> None:
    litellm = ROOT / ".venv-litellm" / "bin" / "litellm"
    if not litellm.exists():
        subprocess.run([str(ROOT / "scripts" / "setup-litellm")], check=True)
    base = Settings()
    manager.up(base.stack)
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "SPENDSTREAM_KAFKA__TOPIC_PREFIX": f"bp{tag}.",
        "SPENDSTREAM_REDIS__KEY_PREFIX": f"bp{tag}",
        "SPENDSTREAM_CLICKHOUSE__DATABASE": f"bench_proxy_{tag}",
        "SPENDSTREAM_METRICS_PORT": str(_free_port()),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    env.pop("VIRTUAL_ENV", None)
    ensure_topics(base.kafka.bootstrap, Topics(f"bp{tag}."))
    client = redis.Redis.from_url(base.redis.url)
    big = 10**15
    apply_budgets(
        client,
        KeyLayout(f"bp{tag}"),
        [OrgConfig("acme")],
        [Budget("acme", ScopeKind.ORG, "acme", Period.MONTHLY, big, BudgetMode.HARD),
         Budget("acme", ScopeKind.DEPARTMENT, "eng", Period.MONTHLY, big, BudgetMode.HARD)],
    )  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    (folder / "custom_auth.py").write_text(CUSTOM_AUTH.replace("{KEYS!r}", repr(KEYS)))
    (folder / "noop_logger.py").write_text(NOOP)
    worker = subprocess.Popen(
        [sys.executable, "-m", "admin.cli", "worker", "--metrics-loopback"],
        env=env, stdout=(folder / "worker.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    proxies: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in CALLBACKS}
    try:
        hook_cpu_ms, hook_wall_ms = in_process(litellm, env, folder)
        print(f"  the hook in process: {hook_cpu_ms:.3f} ms CPU, {hook_wall_ms:.3f} ms wall per request",
              file=sys.stderr)  # fmt: skip
        for name, callbacks in CALLBACKS.items():
            (folder / f"{name}.yaml").write_text(CONFIG.format(callbacks=callbacks))
            port = _free_port()
            proc = subprocess.Popen(
                [str(litellm), "--config", str(folder / f"{name}.yaml"), "--port", str(port), "--host", "127.0.0.1"],
                env={**env, "PYTHONPATH": f"{ROOT}:{folder}"},
                stdout=(folder / f"{name}.log").open("wb"), stderr=subprocess.STDOUT, cwd=folder,
            )  # fmt: skip
            proxies[name] = (port, proc)
        for name, (port, proc) in proxies.items():
            deadline = time.monotonic() + 240
            while True:
                if proc.poll() is not None:
                    raise RuntimeError((folder / f"{name}.log").read_text()[-3000:])
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {name} proxy did not start")
                time.sleep(0.5)
            asyncio.run(_round(port))  # warm-up: imports, tokenizer, connections
        for r in range(ROUNDS):
            order = list(proxies) if r % 2 == 0 else list(reversed(proxies))
            for name in order:
                port, proc = proxies[name]
                cpu_before = process_cpu_s(proc.pid)
                latencies, took = asyncio.run(_round(port))
                cpu_ms = (process_cpu_s(proc.pid) - cpu_before) * 1000 / REQUESTS
                ordered = sorted(latencies)
                row = (percentile(ordered, 0.5) * 1000, percentile(ordered, 0.99) * 1000, REQUESTS / took, cpu_ms)
                results[name].append(row)
                print(f"  round {r + 1} {name:<5} p50 {row[0]:.2f} ms p99 {row[1]:.2f} ms {row[2]:.0f}/s "
                      f"cpu {row[3]:.2f} ms/request", file=sys.stderr)  # fmt: skip
    finally:
        for _, proc in proxies.values():
            proc.terminate()
        for _, proc in proxies.values():
            proc.wait(30)
        worker.terminate()
        worker.wait(30)
        for key in client.scan_iter(f"bp{tag}:*", count=1000):
            client.delete(key)
        UsageStore.of(base.clickhouse).client.command(f"DROP DATABASE IF EXISTS bench_proxy_{tag}")

    def med(name: str, i: int) -> float:
        return statistics.median(row[i] for row in results[name])

    by_config = {
        name: {
            "p50_ms": round(med(name, 0), 2),
            "p99_ms": round(med(name, 1), 2),
            "requests_per_s": round(med(name, 2), 1),
            "cpu_ms_per_request": round(med(name, 3), 3),
        }
        for name in CALLBACKS
    }
    write_result(
        "proxy",
        {
            "rounds": ROUNDS,
            "requests_per_round": REQUESTS,
            "concurrency": CONCURRENCY,
            "by_config": by_config,
            "hook_added_p50_ms": round(med("hook", 0) - med("noop", 0), 2),
            "hook_added_p99_ms": round(med("hook", 1) - med("noop", 1), 2),
            "hook_rps_ratio": round(med("hook", 2) / med("noop", 2), 3),
            "hook_added_cpu_ms_per_request": round(med("hook", 3) - med("noop", 3), 3),
            "hook_in_process_cpu_ms_per_request": round(hook_cpu_ms, 3),
            "hook_in_process_wall_ms_per_request": round(hook_wall_ms, 3),
            "targets": {"hook_added_cpu_ms_per_request": 0.5, "hook_added_p50_ms": 1.0, "hook_rps_ratio": 0.95},
        },
    )


if __name__ == "__main__":
    main()
