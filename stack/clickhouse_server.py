"""The embedded ClickHouse: chdb's engine behind ClickHouse's HTTP interface.

One machine runs this instead of a ClickHouse server, and
``clickhouse-connect`` talks to it exactly as it talks to a real server, so
the same client code runs in tests, in the demo and in production. Data lives
in one directory and survives a restart.

Run it with ``python -m stack.clickhouse_server --port 8123 --data DIR``
(``spendstream stack up`` does). It serves:

* ``GET /ping`` and ``GET /`` -> ``Ok.``;
* queries by GET or POST (``query`` parameter and/or body), in any output
  format the engine has (``FORMAT Native`` included), with ``param_*``
  bound parameters, query settings as URL parameters, and the ``database``
  parameter;
* inserts whose body follows ``INSERT ... FORMAT <fmt>`` (Native included),
  compressed with lz4, zstd, gzip or deflate, or chunked;
* ``GET /metrics``: Prometheus metrics of this server.

Statements run one at a time on one engine session (the engine itself uses
every core for each statement).
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import signal
import threading
import time
import uuid
from base64 import b64decode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from stack.chhttp import ChRequest, ProtocolError, error_response, parse_request

log = logging.getLogger("spendstream.clickhouse")

_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8",
}


class Engine:
    """One chdb session, used by one statement at a time."""

    def __init__(self, data_dir: Path) -> None:
        from chdb import session  # noqa: PLC0415 - heavy import, only in the server process

        session_class: Any = session.Session  # chdb ships no annotations
        data_dir.mkdir(parents=True, exist_ok=True)
        self._session: Any = session_class(str(data_dir))
        self._lock = threading.Lock()
        self._database = "default"
        self._settings: dict[str, str] = {}
        result = self._session.query("SELECT version()", "TabSeparated")
        self.version = result.bytes().decode().strip()

    def _run(self, sql: str, fmt: str = "TabSeparated", params: dict[str, str] | None = None) -> Any:
        return self._session.query(sql, fmt, params=params or {})

    def _prepare(self, request: ChRequest) -> None:
        if request.database != self._database:
            self._run(f"USE {_identifier(request.database)}")
            self._database = request.database
        for name in [n for n in self._settings if n not in request.settings]:
            self._run(f"SET {name} = DEFAULT")
            del self._settings[name]
        for name, value in request.settings.items():
            if self._settings.get(name) != value:
                self._run(f"SET {name} = {_literal(value)}")
                self._settings[name] = value

    def execute(self, request: ChRequest) -> tuple[bytes, dict[str, int]]:
        """Run a request; returns the body and the summary counters."""
        with self._lock:
            self._prepare(request)
            if request.data is not None:
                assert request.fmt is not None
                inserter = self._session._conn.send_insert(request.sql, request.fmt)
                try:
                    if request.data:
                        inserter.append(request.data)
                    done = inserter.finish()
                except BaseException:
                    inserter.cancel()
                    raise
                return b"", {"written_rows": done.rows_written, "written_bytes": done.bytes_written}
            result = self._run(request.sql, request.default_format, request.params)
            return bytes(result.bytes()), {
                "read_rows": result.rows_read(),
                "read_bytes": result.bytes_read(),
                "written_rows": result.rows_written() if hasattr(result, "rows_written") else 0,
            }

    def close(self) -> None:
        with self._lock:
            self._session.close()


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "spendstream_clickhouse_requests",
            "HTTP requests served by the embedded ClickHouse, by kind and outcome",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.rows_inserted = Counter(
            "spendstream_clickhouse_inserted_rows", "Rows written by inserts", registry=self.registry
        )
        self.latency = Histogram(
            "spendstream_clickhouse_request_duration_seconds",
            "Time to run one statement",
            ["kind"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], engine: Engine, password: str | None) -> None:
        super().__init__(address, Handler)
        self.engine = engine
        self.password = password
        self.metrics = Metrics()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorised(self) -> bool:
        expected = self.server.password
        if not expected:
            return True
        given = self.headers.get("X-ClickHouse-Key")
        auth = self.headers.get("Authorization", "")
        if given is None and auth.startswith("Basic "):
            _, _, given = b64decode(auth[6:]).decode(errors="replace").partition(":")
        if given is None:
            given = dict(p.split("=", 1) for p in (urlsplit(self.path).query or "").split("&") if "=" in p).get(
                "password"
            )
        return given is not None and secrets.compare_digest(given, expected)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/metrics":
            self._send(200, generate_latest(self.server.metrics.registry), {"Content-Type": CONTENT_TYPE_LATEST})
            return
        if url.path in ("/ping", "/") and "query=" not in (url.query or ""):
            self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        self._query(url.query, b"")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        self._query(url.query, self._read_body())

    def _query(self, query_string: str, body: bytes) -> None:
        engine = self.server.engine
        metrics = self.server.metrics
        query_id = ""
        kind = "query"
        started = time.perf_counter()
        try:
            if not self._authorised():
                raise ProtocolError(516, "AUTHENTICATION_FAILED", "default: Authentication failed")
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = parse_request(query_string, headers, body)
            query_id = request.query_id or str(uuid.uuid4())
            kind = "insert" if request.is_insert else "query"
            payload, summary = engine.execute(request)
        except Exception as exc:  # noqa: BLE001 - every engine error becomes a ClickHouse-style error response
            status, code, error_body = error_response(str(exc), engine.version)
            metrics.requests.labels(kind, "error").inc()
            self._send(
                status,
                error_body,
                {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": str(code),
                    "X-ClickHouse-Server-Display-Name": "spendstream-embedded",
                    "X-ClickHouse-Query-Id": query_id,
                },
            )
            return
        elapsed = time.perf_counter() - started
        metrics.requests.labels(kind, "ok").inc()
        metrics.latency.labels(kind).observe(elapsed)
        metrics.rows_inserted.inc(summary.get("written_rows", 0) if kind == "insert" else 0)
        summary_header = {k: str(v) for k, v in summary.items()}
        summary_header["elapsed_ns"] = str(int(elapsed * 1e9))
        self._send(
            200,
            payload,
            {
                "Content-Type": _CONTENT_TYPES.get(request.default_format, "application/octet-stream"),
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Format": request.default_format,
                "X-ClickHouse-Timezone": "UTC",
                "X-ClickHouse-Server-Display-Name": "spendstream-embedded",
                "X-ClickHouse-Summary": json.dumps(summary_header),
            },
        )


def serve(host: str, port: int, data_dir: Path, password: str | None = None) -> None:
    engine = Engine(data_dir)
    server = Server((host, port), engine, password)
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("embedded ClickHouse %s listening on %s:%d, data in %s", engine.version, host, port, data_dir)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
        log.info("embedded ClickHouse stopped")


def main(argv: list[str] | None = None) -> None:
    import os  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="chdb behind ClickHouse's HTTP interface")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--data", type=Path, required=True, help="data directory (kept across restarts)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    password = os.environ.get("SPENDSTREAM_CLICKHOUSE__PASSWORD") or None
    serve(args.host, args.port, args.data, password)


if __name__ == "__main__":
    main()
