"""The export API's pure rules: the opaque cursor (a position in the export's order), the page size, the
format and FOCUS version asked for, and what may be closed."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime

from schemas.errors import SpendstreamError
from schemas.params import FIRST_DAY, LAST_DAY
from schemas.period_close import EXPORT_START, ExportPosition

__all__ = ["ExportError", "ExportRequest", "closable_month", "decode_cursor", "encode_cursor", "parse_export"]

_DIGITS = re.compile(r"[0-9]{1,12}")

FORMATS = {"csv": ("CSVWithNames", "text/csv; charset=utf-8"), "jsonl": ("JSONEachRow", "application/x-ndjson")}
VERSIONS = ("1.2", "1.0")


class ExportError(SpendstreamError):
    """An export request that cannot be answered; ``field`` names what is wrong."""


def encode_cursor(position: ExportPosition) -> str:
    body = json.dumps({"v": 1, "at": position.at.astimezone(UTC).isoformat(), "id": position.event_id})
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> ExportPosition:
    if not text:
        return EXPORT_START
    try:
        body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if body.get("v") != 1:
            raise ValueError("version")
        at = datetime.fromisoformat(body["at"])
        if at.tzinfo is None:
            raise ValueError("zone")
        if not FIRST_DAY <= at.date() <= LAST_DAY:
            raise ValueError("range")
        return ExportPosition(at.astimezone(UTC), str(body["id"]))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise ExportError("cursor", "not a cursor this API gave out (start without one)") from None


class ExportRequest:
    def __init__(self, after: ExportPosition, limit: int, fmt: str, version: str) -> None:
        self.after, self.limit, self.fmt, self.version = after, limit, fmt, version

    @property
    def clickhouse_format(self) -> str:
        return FORMATS[self.fmt][0]

    @property
    def media_type(self) -> str:
        return FORMATS[self.fmt][1]


def parse_export(params: Mapping[str, str], max_rows: int) -> ExportRequest:
    after = decode_cursor(params.get("cursor", ""))
    text = params.get("limit") or str(min(100_000, max_rows))
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= max_rows:
        raise ExportError("limit", f"a whole number of rows from 1 to {max_rows:,}")
    fmt = params.get("format") or "csv"
    if fmt not in FORMATS:
        raise ExportError("format", f"{fmt!r}: csv or jsonl")
    version = params.get("focus_version") or "1.2"
    if version not in VERSIONS:
        raise ExportError("focus_version", f"{version!r}: 1.2 or 1.0")
    return ExportRequest(after, int(text), fmt, version)


def closable_month(text: str, today: date) -> date:
    """The month ``text`` (YYYY-MM) if it has ended (``today`` is the org's date)."""
    try:
        month = datetime.strptime(text, "%Y-%m").date()
    except (ValueError, TypeError):
        raise ExportError("month", f"{str(text)[:40]!r} is not YYYY-MM") from None
    if month < FIRST_DAY:
        raise ExportError("month", f"{text} is before {FIRST_DAY:%Y-%m}")
    if month >= today.replace(day=1):
        raise ExportError("month", f"{text} has not ended; a month closes after its last day")
    return month
