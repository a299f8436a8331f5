"""The pipelined Redis connection the async cap client sends its script calls on.

Against the local Redis (and a throwaway one with a password), under asyncio's loop and uvloop (the
decision service's): every reply reaches its own caller however many calls are in flight; a script
Redis forgot is sent whole; error replies, a killed connection, a silent server and a refused port
raise redis-py's exceptions and the next call connects again; the URL's password and db are used.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import uvloop
from redis import exceptions as rx

from enforcement.client import AsyncCapClient
from enforcement.pipelined import PipelinedRedis, PipelinedScript, pack
from enforcement.subject import Subject
from schemas.settings import Settings

LOOPS = {"asyncio": asyncio.run, "uvloop": uvloop.run}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Awaitable[Any]], Any]:
    return LOOPS[request.param]  # type: ignore[return-value]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_pack_is_resp_and_refuses_what_redis_cannot_take() -> None:
    assert pack(("SET", b"k", 42)) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n42\r\n"
    assert pack(("ECHO", "né")) == b"*2\r\n$4\r\nECHO\r\n$3\r\nn\xc3\xa9\r\n"
    for bad in (1.5, True, None):
        with pytest.raises(rx.DataError, match="str, bytes or int"):
            pack(("SET", "k", bad))  # type: ignore[arg-type]


def test_each_caller_gets_its_own_reply_with_many_in_flight(
    stack: Settings, redis_client: redis.Redis, key_prefix: str, run: Callable[[Awaitable[Any]], Any]
) -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        conn = PipelinedRedis.from_url(stack.redis.url, timeout_s=5)
        echoes = await asyncio.gather(*(conn.execute("ECHO", f"m{i}") for i in range(2_000)))
        counts = await asyncio.gather(*(conn.execute("INCR", f"{key_prefix}:n") for _ in range(500)))
        await conn.aclose()
        return echoes, counts

    echoes, counts = run(main())
    assert echoes == [f"m{i}".encode() for i in range(2_000)]
    assert sorted(counts) == list(range(1, 501)) and counts == sorted(counts)  # sent and answered in order
    assert redis_client.get(f"{key_prefix}:n") == b"500"


def test_a_script_redis_forgot_is_sent_whole(stack: Settings, run: Callable[[Awaitable[Any]], Any]) -> None:
    async def main() -> list[Any]:
        conn = PipelinedRedis.from_url(stack.redis.url)
        script: PipelinedScript = conn.register_script("return {KEYS[1], ARGV[1] + 1}")
        first = await script(keys=["{x}:k"], args=[41])
        await conn.execute("SCRIPT", "FLUSH")  # as after a Redis restart
        second = await script(keys=["{x}:k"], args=[1])
        await conn.aclose()
        return [first, second]

    assert run(main()) == [[b"{x}:k", 42], [b"{x}:k", 2]]


def test_an_error_reply_raises_and_the_connection_goes_on(
    stack: Settings, run: Callable[[Awaitable[Any]], Any]
) -> None:
    async def main() -> Any:
        conn = PipelinedRedis.from_url(stack.redis.url)
        with pytest.raises(rx.ResponseError, match="wrong number of arguments"):
            await conn.execute("GET")
        with pytest.raises(rx.NoScriptError):
            await conn.execute("EVALSHA", "0" * 40, 0)
        answer = await conn.execute("PING")
        await conn.aclose()
        return answer

    assert run(main()) == b"PONG"


def test_a_killed_connection_fails_its_calls_and_the_next_one_reconnects(
    stack: Settings, redis_client: redis.Redis, key_prefix: str, run: Callable[[Awaitable[Any]], Any]
) -> None:
    async def main() -> tuple[int, int]:
        conn = PipelinedRedis.from_url(stack.redis.url, timeout_s=10)
        first_id = int(await conn.execute("CLIENT", "ID"))
        blocked = asyncio.ensure_future(conn.execute("BLPOP", f"{key_prefix}:never", 8))
        await asyncio.sleep(0.1)
        redis_client.client_kill_filter(_id=str(first_id))
        with pytest.raises(rx.ConnectionError):
            await blocked
        second_id = int(await conn.execute("CLIENT", "ID"))
        await conn.aclose()
        return first_id, second_id

    first_id, second_id = run(main())
    assert second_id != first_id


def test_a_second_event_loop_gets_a_connection_of_its_own(stack: Settings) -> None:
    conn = PipelinedRedis.from_url(stack.redis.url)

    async def client_id() -> int:
        return int(await conn.execute("CLIENT", "ID"))

    first, second = asyncio.run(client_id()), asyncio.run(client_id())  # the first loop is closed by now
    assert first != second


def test_a_stalled_loop_is_not_taken_for_a_late_redis(stack: Settings, run: Callable[[Awaitable[Any]], Any]) -> None:
    """A proxy's loop can stall for longer than the timeout (a long callback, a garbage collection); the
    call's time starts when it is sent, and a reply that arrived meanwhile is read before it is judged
    late (uvloop runs due timers before it reads)."""

    async def main() -> tuple[Any, Any]:
        conn = PipelinedRedis.from_url(stack.redis.url, timeout_s=0.2)
        await conn.execute("PING")
        loop = asyncio.get_running_loop()
        loop.call_soon(time.sleep, 0.3)  # stalls the turn in which the call is made, before it is sent
        first = await conn.execute("ECHO", "a")
        pending = asyncio.ensure_future(conn.execute("ECHO", "b"))
        await asyncio.sleep(0)  # the call is queued to be sent ...
        loop.call_soon(time.sleep, 0.4)  # ... and the loop stalls right after sending it, the reply arriving
        second = await pending
        await conn.aclose()
        return first, second

    assert run(main()) == (b"a", b"b")


def test_a_silent_server_times_out_and_the_next_call_connects_again(run: Callable[[Awaitable[Any]], Any]) -> None:
    async def main() -> tuple[int, float]:
        accepted = 0

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            await reader.read(1 << 16)  # reads the call and never answers
            await asyncio.sleep(5)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = PipelinedRedis(host="127.0.0.1", port=port, timeout_s=0.2)
        began = time.monotonic()
        with pytest.raises(rx.TimeoutError, match=r"within 0\.2 s"):
            await asyncio.gather(conn.execute("PING"), conn.execute("PING"))
        waited = time.monotonic() - began
        with pytest.raises(rx.TimeoutError):
            await conn.execute("PING")
        server.close()
        return accepted, waited

    accepted, waited = run(main())
    assert accepted == 2  # the late connection was dropped and a new one made
    assert waited >= 0.2


def test_a_refused_port_is_a_connection_error(run: Callable[[Awaitable[Any]], Any]) -> None:
    async def main() -> None:
        conn = PipelinedRedis(host="127.0.0.1", port=_free_port(), timeout_s=0.5)
        with pytest.raises(rx.ConnectionError, match="cannot connect to Redis"):
            await conn.execute("PING")

    run(main())


@pytest.fixture
def secured_redis(tmp_path: Path) -> Iterator[int]:
    """A throwaway Redis that wants a password."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by scripts/setup"
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--requirepass", "s3cret", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the throwaway Redis did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_urls_password_and_db_are_used(secured_redis: int, run: Callable[[Awaitable[Any]], Any]) -> None:
    port = secured_redis

    async def main() -> None:
        conn = PipelinedRedis.from_url(f"redis://:s3cret@127.0.0.1:{port}/3")
        assert await conn.execute("SET", "k", "v") == b"OK"
        wrong = PipelinedRedis.from_url(f"redis://127.0.0.1:{port}/0", password="wrong")
        with pytest.raises(rx.ResponseError, match=r"WRONGPASS|invalid password"):
            await wrong.execute("PING")
        await conn.aclose()

    run(main())
    assert redis.Redis(port=port, password="s3cret", db=3).get("k") == b"v"


def test_the_async_cap_client_pipelines_its_scripts_on_a_standalone_redis(
    stack: Settings, redis_client: redis.Redis, key_prefix: str
) -> None:
    from enforcement.budget_store import apply_budgets
    from enforcement.keys import KeyLayout
    from schemas import Budget, BudgetMode, Period, ScopeKind
    from schemas.budgets import OrgConfig

    subject = Subject("acme", "ada", "eng")
    apply_budgets(
        redis_client,
        KeyLayout(key_prefix),
        [OrgConfig("acme")],
        [Budget("acme", ScopeKind.USER, "ada", Period.DAILY, 10_000, BudgetMode.HARD)],
    )

    async def main() -> list[tuple[bool, str]]:
        caps = AsyncCapClient.from_url(stack.redis.url, key_prefix=key_prefix)
        assert isinstance(caps._reserve, PipelinedScript)
        decisions = await asyncio.gather(*(caps.reserve(subject, f"r{i}", 4_000) for i in range(3)))
        released = await caps.release("acme", "r0")
        again = await caps.reserve(subject, "r3", 4_000)
        await caps.aclose()
        return [(d.allowed, d.reason) for d in decisions] + [(released, ""), (again.allowed, again.reason)]

    outcomes = asyncio.run(main())
    admitted = [allowed for allowed, _ in outcomes[:3]]
    assert sorted(admitted) == [False, True, True]  # 2 x 4,000 fit in 10,000, a third does not (any of the three)
    assert "user/ada daily hard cap" in outcomes[admitted.index(False)][1]
    released, again = outcomes[3][0], outcomes[4][0]
    assert released is admitted[0]  # r0's hold was released when it had one ...
    assert again is released  # ... and then made room for r3
