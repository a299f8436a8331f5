"""One connection to one Redis with every call pipelined on it: the async cap client's script calls.

redis-py's asyncio client takes a connection from a pool for each command, encodes each argument
through its encoder and wraps the read in a timeout task: about 70 µs of CPU for a PING, 110 µs for
a reserve's ``EVALSHA``, most of a decision's cost in the decision service. Here every call is
written to one connection as it comes (the writes of one event-loop turn go out in one send) and
its future is answered in order as hiredis parses the replies, so a call costs one packing, one
future and its share of a send and a receive.

Errors are redis-py's, so callers keep one policy for both clients: a refused or lost connection
raises ``ConnectionError`` (every call in flight on it too), a reply later than ``timeout_s`` raises
``TimeoutError`` and closes the connection (what follows it is as late), and an error reply raises
``ResponseError`` (``NoScriptError`` for ``NOSCRIPT``), all from ``redis.exceptions``. The next
call connects again. Standalone Redis only (``redis://``, ``rediss://``, ``unix://``, with password
and db); a Cluster keeps redis-py's client, which routes by slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis import exceptions as rx
from redis.connection import SSLConnection, parse_url

__all__ = ["PipelinedRedis", "PipelinedScript", "pack"]

Arg = str | bytes | int
_GRACE_S = 0.001  # a late send is looked at once more this much later, after the loop has read


def pack(args: Sequence[Arg]) -> bytes:
    """One command in RESP: an array of bulk strings, packed by hiredis (a third of the time a Python loop
    takes). Only text, bytes and integers (not bool) are sent: hiredis refuses the rest but floats, which
    are refused here, so an amount never goes out as an inexact number."""
    if float in map(type, args):
        raise rx.DataError("a Redis argument must be str, bytes or int, not float")
    try:
        packed: bytes = hiredis.pack_command(cast(Any, tuple(args)))  # its stub types a 1-tuple
        return packed
    except TypeError:
        bad = next(a for a in args if not isinstance(a, str | bytes | int) or isinstance(a, bool))
        raise rx.DataError(f"a Redis argument must be str, bytes or int, not {type(bad).__name__}") from None


class _Protocol(asyncio.Protocol):
    """The replies of one connection, matched to its calls in the order they were written.

    A call's time runs from when it is handed to the transport. One timer watches the oldest send not
    yet answered in full; when it finds it late it looks once more after the loop has read what
    arrived (uvloop runs due timers before it reads, so a loop stalled by a long callback or a garbage
    collection would otherwise take a reply waiting in the socket for a timeout)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.loop = loop  # the event loop that owns the connection
        self._timeout_s = timeout_s
        self._reader = hiredis.Reader(protocolError=rx.InvalidResponse, replyError=rx.ResponseError)
        self._waiting: deque[asyncio.Future[Any]] = deque()  # one per call not yet answered, oldest first
        self._out: list[bytes] = []  # calls of this loop turn, sent together
        self._written = 0  # calls handed to the transport so far
        self._answered = 0  # replies read so far
        self._deadlines: deque[tuple[int, float]] = deque()  # (calls written by the end of a send, its deadline)
        self._transport: asyncio.Transport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports only quack like one

    def call(self, packed: bytes) -> asyncio.Future[Any]:
        if self.lost is not None:
            raise rx.ConnectionError(f"the connection to Redis was lost: {self.lost}")
        future = self.loop.create_future()
        self._waiting.append(future)
        if not self._out:
            self.loop.call_soon(self._flush)
        self._out.append(packed)
        return future

    def _flush(self) -> None:
        if self._out and self._transport is not None and self.lost is None:
            self._transport.write(b"".join(self._out))
            self._written += len(self._out)
            self._deadlines.append((self._written, self.loop.time() + self._timeout_s))
            if self._watchdog is None:
                self._arm()
        self._out.clear()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiting = self._waiting
        while (reply := self._reader.gets()) is not False:
            if not waiting:
                self._fail(rx.InvalidResponse("Redis sent a reply nothing asked for"))
                return
            future = waiting.popleft()
            self._answered += 1
            if future.done():  # its caller gave up (cancelled)
                continue
            if isinstance(reply, rx.ResponseError):
                text = str(reply)
                future.set_exception(rx.NoScriptError(text) if text.startswith("NOSCRIPT") else reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self._fail(rx.ConnectionError(f"Redis closed the connection ({exc or 'end of stream'})"))

    def _oldest_deadline(self) -> float | None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= self._answered:
            deadlines.popleft()
        return deadlines[0][1] if deadlines else None

    def _arm(self) -> None:
        deadline = self._oldest_deadline()
        self._watchdog = None if deadline is None else self.loop.call_at(deadline, self._check)

    def _check(self) -> None:
        deadline = self._oldest_deadline()
        if deadline is not None and deadline <= self.loop.time():
            self._watchdog = self.loop.call_later(_GRACE_S, self._expire, self._answered)
        else:
            self._arm()

    def _expire(self, answered_before: int) -> None:
        if self._answered == answered_before and self._oldest_deadline() is not None:
            self._fail(rx.TimeoutError(f"Redis did not answer within {self._timeout_s:g} s"))
        else:  # replies came meanwhile: the loop was late, not Redis
            self._arm()

    def _fail(self, exc: Exception) -> None:
        """Every call in flight fails with ``exc`` and the connection is closed; the next call reconnects."""
        self.lost = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(exc)
        self._deadlines.clear()
        self._out.clear()
        if self._transport is not None:
            self._transport.abort()


class PipelinedRedis:
    """Calls pipelined on one connection (see the module's notes); connects at the first call."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        timeout_s: float = 0.25,
    ) -> None:
        self._where = path or f"{host}:{port}"
        self._host, self._port, self._path, self._db = host, port, path, db
        self._username, self._password = username, password
        self._tls = ssl.create_default_context() if tls else None
        self.timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._connecting_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_url(cls, url: str, *, password: str | None = None, timeout_s: float = 0.25) -> PipelinedRedis:
        """``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS) or ``unix://path?db=N``;
        ``password`` overrides the URL's."""
        parts: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        return cls(
            host=parts.get("host", "127.0.0.1"),
            port=int(parts.get("port", 6379)),
            path=parts.get("path"),
            db=int(parts.get("db", 0)),
            username=parts.get("username"),
            password=password if password is not None else parts.get("password"),
            tls=parts.get("connection_class") is SSLConnection,
            timeout_s=timeout_s,
        )

    async def execute(self, *args: Arg) -> Any:
        """Send one command and return its reply (bytes, int, list, None). A connection belongs to the
        event loop that made it: called from another one (a second ``asyncio.run``), it connects anew."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None or protocol.loop is not asyncio.get_running_loop():
            protocol = await self._connect()
        return await protocol.call(pack(args))

    def register_script(self, source: str) -> PipelinedScript:
        return PipelinedScript(self, source)

    async def aclose(self) -> None:
        if self._protocol is not None and self._protocol.lost is None:
            self._protocol._fail(rx.ConnectionError("closed by the client"))
        self._protocol = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self._connecting is None or self._connecting_loop is not loop:
            self._connecting, self._connecting_loop = asyncio.Lock(), loop
        async with self._connecting:  # callers arriving while one connects share its connection
            current = self._protocol
            if current is not None and current.lost is None and current.loop is loop:
                return current
            protocol = _Protocol(loop, self.timeout_s)
            try:
                if self._path:
                    opening = loop.create_unix_connection(lambda: protocol, self._path)
                else:
                    opening = loop.create_connection(lambda: protocol, self._host, self._port, ssl=self._tls)
                await asyncio.wait_for(opening, self.timeout_s)
                if self._password is not None:
                    auth: tuple[Arg, ...] = (self._username, self._password) if self._username else (self._password,)
                    await protocol.call(pack(("AUTH", *auth)))
                if self._db:
                    await protocol.call(pack(("SELECT", self._db)))
            except OSError as exc:  # asyncio's TimeoutError is an OSError too
                protocol._fail(rx.ConnectionError(str(exc)))
                raise rx.ConnectionError(f"cannot connect to Redis at {self._where}: {exc or 'timed out'}") from exc
            except rx.ResponseError:
                protocol._fail(rx.ConnectionError("refused at sign-in"))
                raise
            self._protocol = protocol
            return protocol


class PipelinedScript:
    """A Lua script called by its SHA1; sent whole once when Redis does not hold it (after a restart or
    ``SCRIPT FLUSH``). Called like redis-py's: ``await script(keys=[...], args=[...])``."""

    def __init__(self, redis: PipelinedRedis, source: str) -> None:
        self._redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - the name Redis gives a script

    async def __call__(self, keys: Sequence[Arg] = (), args: Sequence[Arg] = ()) -> Any:
        try:
            return await self._redis.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except rx.NoScriptError:
            return await self._redis.execute("EVAL", self.source, len(keys), *keys, *args)
