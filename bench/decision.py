"""The decision service over HTTP, as a proxy calls it: ``POST /v1/reserve`` over three hard caps.

Two servers on the same ASGI stack (Starlette under uvicorn, one process each, the same flags): the
decision service (``enforcement.decision_api.create_app`` with its Redis client), and the same stack
answering a constant JSON body without Redis, the baseline of the same run. A small keep-alive
HTTP/1.1 client (asyncio streams, one request in flight per connection) drives each at 1, 8 and 32
connections for ``SECONDS`` per round, in interleaved rounds; the figures are the median over rounds.

Writes bench/results/decision.json: per connection count, p50/p99 (ms), requests/s and the server
process's CPU per request (from /proc, which the load generator on the same cores touches least) of
both with ``decision_over_constant`` (one process each); and the headline keys ``decision_p99_ms`` (8
connections), ``decision_over_constant`` (the decision service's requests/s over the constant answer's,
at 8 connections) and, at 8 connections,
``decision_cpu_us_per_request`` and ``constant_cpu_us_per_request``. Both servers freeze what they
built before serving, as ``spendstream decision serve`` does. Targets: p99 <= 2 ms at 8 connections,
>= 0.5x the constant answer's throughput.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from bench._common import percentile, process_cpu_s, write_result
from enforcement.access import hash_key, new_key
from enforcement.budget_store import apply_budgets
from enforcement.keys import KeyLayout
from schemas.budget_file import parse_budget_file
from schemas.settings import Settings
from stack import manager

CONNECTIONS = (1, 8, 32)
ROUNDS = 3
SECONDS = 4.0
BUDGETS = (
    "budgets:\n"
    '  - {org: acme, scope: org, period: monthly, limit: "1000000", mode: hard}\n'
    '  - {org: acme, scope: department, id: eng, period: monthly, limit: "1000000", mode: hard}\n'
    '  - {org: acme, scope: user, id: ada, period: monthly, limit: "1000000", mode: hard}\n'
)


def serve(kind: str, port: int, redis_url: str, prefix: str, keys_file: str) -> None:
    """A server process: the decision service, or the constant answer on the same stack."""
    import uvicorn  # noqa: PLC0415
    from starlette.applications import Starlette  # noqa: PLC0415
    from starlette.requests import Request  # noqa: PLC0415
    from starlette.responses import JSONResponse  # noqa: PLC0415
    from starlette.routing import Route  # noqa: PLC0415

    if kind == "decision":
        from admin.decision_service import load_keys  # noqa: PLC0415
        from enforcement.client import AsyncCapClient  # noqa: PLC0415
        from enforcement.decision_api import create_app  # noqa: PLC0415

        client = AsyncCapClient.from_url(redis_url, key_prefix=prefix, reservation_ttl_s=60)
        app = create_app(client, load_keys(Path(keys_file)))
    else:
        answer = {"admitted": True, "outcome": "admitted", "request_id": "r", "blocking": None, "budgets": []}

        async def constant(request: Request) -> JSONResponse:
            await request.body()
            return JSONResponse(answer)

        app = Starlette(routes=[Route("/v1/reserve", constant, methods=["POST"])])
    gc.collect()  # as `spendstream decision serve` does, for both servers
    gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _drive(port: int, key: str, connections: int, seconds: float) -> tuple[list[float], int]:
    """Latencies (s) of every request answered in ``seconds`` over ``connections`` keep-alive connections."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one_connection(n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            body = json.dumps(
                {
                    "org_id": "acme",
                    "user_id": "ada",
                    "department_id": "eng",
                    "request_id": f"b{n}-{i}-{uuid.uuid4().hex[:8]}",
                    "estimate_nanos": 1000,
                }
            ).encode()
            request = (
                f"POST /v1/reserve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode() + answer.decode())
        writer.close()

    await asyncio.gather(*(one_connection(n) for n in range(connections)))
    return latencies, len(latencies)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not listen")


def main() -> None:
    settings = Settings()
    manager.up(settings.stack)
    prefix = f"bd{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.redis.url)
    parsed = parse_budget_file(BUDGETS)
    apply_budgets(client, KeyLayout(prefix), parsed.orgs.values(), parsed.budgets)
    key = new_key()
    keys_file = Path(f"/tmp/{prefix}-keys.yaml")
    entry = {"name": "bench", "sha256": hash_key(key), "orgs": ["acme"], "rights": ["reserve"]}
    keys_file.write_text("keys:\n  - " + json.dumps(entry) + "\n")
    servers: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    results: dict[str, dict[int, list[tuple[float, float, float, float]]]] = {"decision": {}, "constant": {}}
    try:
        for kind in ("decision", "constant"):
            port = _free_port()
            command = [sys.executable, __file__, "--serve", kind, str(port), settings.redis.url, prefix, str(keys_file)]
            proc = subprocess.Popen(command, env=os.environ.copy())
            _wait_listening(port, proc)
            servers[kind] = (port, proc)
        for _ in range(ROUNDS):
            for connections in CONNECTIONS:
                for kind in ("decision", "constant"):
                    port, proc = servers[kind]
                    cpu_before = process_cpu_s(proc.pid)
                    latencies, count = asyncio.run(_drive(port, key, connections, SECONDS))
                    cpu_us = (process_cpu_s(proc.pid) - cpu_before) * 1e6 / count
                    ordered = sorted(latencies)
                    p50, p99 = percentile(ordered, 0.5) * 1000, percentile(ordered, 0.99) * 1000
                    results[kind].setdefault(connections, []).append((p50, p99, count / SECONDS, cpu_us))
                    print(f"  {kind:<9} {connections:>2} connections: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
                          f"{count / SECONDS:,.0f}/s, {cpu_us:.0f} us of server CPU each", file=sys.stderr)  # fmt: skip
    finally:
        for _, proc in servers.values():
            proc.terminate()
            proc.wait(10)
        keys_file.unlink(missing_ok=True)
        for stale in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(stale)

    def median(kind: str, connections: int, index: int) -> float:
        return statistics.median(r[index] for r in results[kind][connections])

    table = {
        str(c): {
            **{
                f"{kind}_{name}": round(median(kind, c, i), 3 if i < 2 else 0)
                for kind in ("decision", "constant")
                for i, name in enumerate(("p50_ms", "p99_ms", "per_s", "cpu_us_per_request"))
            },
            "decision_over_constant": round(median("decision", c, 2) / median("constant", c, 2), 3),
        }
        for c in CONNECTIONS
    }
    write_result(
        "decision",
        {
            "rounds": ROUNDS,
            "seconds_per_round": SECONDS,
            "scopes_checked_per_decision": 3,
            "by_connections": table,
            "decision_p99_ms": round(median("decision", 8, 1), 3),
            "decision_over_constant": round(median("decision", 8, 2) / median("constant", 8, 2), 3),
            # the server's own CPU per request (least touched by the load generator sharing the cores)
            "decision_cpu_us_per_request": round(median("decision", 8, 3)),
            "constant_cpu_us_per_request": round(median("constant", 8, 3)),
            "targets": {"decision_p99_ms": 2.0, "decision_over_constant": 0.5},
        },
    )


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), *sys.argv[4:])
    else:
        main()
