"""A closed billing period (pure): finance closes an org's month at a position of the export, the last
row it pulled. Rows of that month after the position are billed to a later open month, as corrections,
so what was exported for a closed month never changes. Closes live on ``config.v1`` as
``close/<org>/<YYYY-MM>`` records and are permanent: a deletion of one is ignored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

__all__ = ["EXPORT_START", "ExportPosition", "PeriodClose", "close_record_body", "parse_close"]


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
