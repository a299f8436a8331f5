"""The FOCUS export's rules (pure): what a page request may ask (an opaque cursor, a page size, a format, a
FOCUS version) and which months may be closed. Finance closes an org's month at a position of the export,
the last row it pulled; rows of that month after the position are billed to a later open month, as
corrections, so what was exported for a closed month never changes. Closes live on ``config.v1`` as
``close/<org>/<YYYY-MM>`` records and are permanent: a deletion of one is ignored.

The export's SQL (FOCUS columns, pages, close parameters) is ``sinks.focus``; its HTTP endpoints are
``console.export_api``."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from schemas.errors import SpendstreamError
from schemas.params import FIRST_DAY, LAST_DAY

__all__ = [
    "EXPORT_START",
    "ExportError",
    "ExportPosition",
    "ExportRequest",
    "PeriodClose",
    "closable_month",
    "close_record_body",
    "decode_cursor",
    "encode_cursor",
    "parse_close",
    "parse_export",
]


@dataclass(frozen=True, slots=True, order=True)
class ExportPosition:
    """Where a row sits in the export's order: when ClickHouse stored it (ms), then its event id."""

    at: datetime  # UTC, millisecond precision
    event_id: str


EXPORT_START = ExportPosition(datetime(1970, 1, 1, tzinfo=UTC), "")  # before every row


@dataclass(frozen=True, slots=True)
class PeriodClose:
    org_id: str
    month: date  # the first day
    position: ExportPosition  # rows up to here belong to the month; later ones are corrections
    closed_by: str
    closed_at: datetime


def parse_close(org_id: str, month_text: str, body: dict[str, Any]) -> PeriodClose:
    month = datetime.strptime(month_text, "%Y-%m").date()
    at = datetime.fromisoformat(body["position"]["at"]).astimezone(UTC)
    return PeriodClose(
        org_id,
        month,
        ExportPosition(at, str(body["position"]["event_id"])),
        str(body["closed_by"]),
        datetime.fromisoformat(body["closed_at"]),
    )


def close_record_body(close: PeriodClose) -> bytes:
    return json.dumps(
        {
            "position": {"at": close.position.at.isoformat(), "event_id": close.position.event_id},
            "closed_by": close.closed_by,
            "closed_at": close.closed_at.isoformat(),
        }
    ).encode()


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
        raise ExportError("limit", f"a whole number of events from 1 to {max_rows:,} (a row per token type each)")
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
