"""The part of ClickHouse's HTTP interface that ``clickhouse-connect`` speaks, as pure functions.

:func:`parse_request` turns an HTTP request (URL parameters, headers, body)
into a :class:`ChRequest`: the SQL, the insert data that follows a
``FORMAT`` clause, the database, the query settings and the bound
parameters. :func:`error_response` renders an engine error the way
ClickHouse does (``Code: 62. DB::Exception: ...``, the
``X-ClickHouse-Exception-Code`` header and the HTTP status ClickHouse maps
the code to). No sockets here: the server in :mod:`stack.clickhouse_server`
does the I/O.
"""

from __future__ import annotations

import gzip
import re
import sys
import zlib
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

import lz4.frame

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

__all__ = [
    "HTTP_ONLY_PARAMS",
    "ChRequest",
    "ProtocolError",
    "decode_body",
    "error_response",
    "parse_request",
]

# URL parameters that steer the HTTP interface itself and are not query settings.
HTTP_ONLY_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "enable_http_compression",
        "http_zlib_compression_level",
        "buffer_size",
        "wait_end_of_query",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "stacktrace",
        "role",
        "client_protocol_version",
        "close_session",
    }
)

_INSERT_WITH_FORMAT = re.compile(
    rb"^\s*(?P<stmt>INSERT\s+INTO\s.*?)\s+FORMAT\s+(?P<fmt>[A-Za-z0-9_]+)[ \t]*(?:\r?\n)?",
    re.IGNORECASE | re.DOTALL,
)
_CODE = re.compile(r"Code:\s*(\d+)")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# ClickHouse's own mapping of exception codes to HTTP statuses (the common ones).
_STATUS_BY_CODE = {
    60: 404,  # UNKNOWN_TABLE
    81: 404,  # UNKNOWN_DATABASE
    16: 404,  # NO_SUCH_COLUMN_IN_TABLE
    47: 404,  # UNKNOWN_IDENTIFIER
    46: 404,  # UNKNOWN_FUNCTION
    62: 400,  # SYNTAX_ERROR
    27: 400,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    6: 400,  # CANNOT_PARSE_TEXT
    53: 400,  # TYPE_MISMATCH
    43: 400,  # ILLEGAL_TYPE_OF_ARGUMENT
    115: 400,  # UNKNOWN_SETTING
    73: 400,  # UNKNOWN_FORMAT
    194: 401,  # REQUIRED_PASSWORD
    516: 401,  # AUTHENTICATION_FAILED
    164: 403,  # READONLY
    57: 500,  # TABLE_ALREADY_EXISTS
}


class ProtocolError(ValueError):
    """A request the interface cannot take; carries the ClickHouse code to answer with."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(f"Code: {code}. DB::Exception: {message}. ({name})")
        self.code = code


@dataclass(slots=True)
class ChRequest:
    sql: str
    data: bytes | None = None  # insert payload in ``fmt``
    fmt: str | None = None  # the insert's input format
    database: str = "default"
    default_format: str = "TabSeparated"
    settings: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    query_id: str = ""

    @property
    def is_insert(self) -> bool:
        return self.data is not None


def decode_body(body: bytes, encoding: str | None) -> bytes:
    """Undo a request's Content-Encoding (lz4 frame, zstd, gzip, deflate): what clickhouse-connect sends."""
    if not encoding or encoding == "identity" or not body:
        return body
    encoding = encoding.strip().lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
        if encoding == "lz4":
            return _lz4_frames(lz4.frame, body)
        if encoding == "zstd":
            return bytes(zstd.decompress(body))  # every frame
    except Exception as exc:  # noqa: BLE001 - every codec raises its own type for corrupt data
        raise ProtocolError(271, "CANNOT_DECOMPRESS", f"cannot decompress the {encoding} body: {exc}") from None
    raise ProtocolError(86, "RECEIVED_ERROR_FROM_REMOTE_IO_SERVER", f"unknown Content-Encoding {encoding}")


def _lz4_frames(frame_module: Any, body: bytes) -> bytes:
    """Clients stream one lz4 frame per block: decode every frame, not only the first."""
    out = []
    rest = body
    while rest:
        decompressor = frame_module.LZ4FrameDecompressor()
        out.append(decompressor.decompress(rest))
        if not decompressor.eof:
            raise ValueError("truncated lz4 frame")
        rest = decompressor.unused_data
    return b"".join(out)


def _multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)
            parts[str(name)] = payload if isinstance(payload, bytes) else b""
    return parts


def parse_request(query_string: str, headers: dict[str, str], body: bytes) -> ChRequest:
    """Build the request the engine runs. ``headers`` keys are lower-case."""
    values: dict[str, str] = dict(parse_qsl(query_string, keep_blank_values=True))
    content_type = headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        for name, payload in _multipart(body, content_type).items():
            values[name] = payload.decode()
        body = b""
    else:
        body = decode_body(body, headers.get("content-encoding"))

    url_query = values.get("query", "").encode()
    full = url_query + (b"\n" if url_query and body else b"") + body if url_query else body
    request = ChRequest(sql="")
    request.database = values.get("database") or headers.get("x-clickhouse-database") or "default"
    request.default_format = values.get("default_format") or headers.get("x-clickhouse-format") or "TabSeparated"
    request.query_id = values.get("query_id", "")
    for name, value in values.items():
        if name.startswith("param_"):
            request.params[name[len("param_") :]] = value
        elif name not in HTTP_ONLY_PARAMS:
            if not _SETTING_NAME.fullmatch(name):
                raise ProtocolError(115, "UNKNOWN_SETTING", f"not a setting name: {name!r}")
            request.settings[name] = value

    match = _INSERT_WITH_FORMAT.match(full)
    if match:
        request.sql = match.group("stmt").decode()
        request.fmt = match.group("fmt").decode()
        request.data = full[match.end() :]
        return request
    if not full.strip():
        raise ProtocolError(62, "SYNTAX_ERROR", "Empty query")
    try:
        request.sql = full.decode()
    except UnicodeDecodeError:
        raise ProtocolError(62, "SYNTAX_ERROR", "the query text is not UTF-8") from None
    return request


def error_response(message: str, version: str) -> tuple[int, int, bytes]:
    """(HTTP status, exception code, body) for an engine error message."""
    match = _CODE.search(message)
    code = int(match.group(1)) if match else 1001  # STD_EXCEPTION
    text = message.strip()
    if not text.startswith("Code:"):
        text = f"Code: {code}. DB::Exception: {text}"
    if _NAME.search(text) is None and code == 1001:
        text += " (STD_EXCEPTION)"
    body = f"{text} (version {version})\n".encode()
    return _STATUS_BY_CODE.get(code, 500), code, body
