"""The export API for finance systems: the org's charges as FOCUS rows, pulled page by page with an
opaque cursor (``GET /api/v1/export/focus``), and months closed at a cursor (``POST
/api/v1/export/close``), after which late rows of a closed month come as corrections in a later one.

Each page is counted first (its last row is the next cursor, sent as ``X-Next-Cursor`` before the
body), then streamed as ClickHouse formats it. Owners, admins and finance (API tokens with the
finance role are what accounting systems use)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from console.actions import require
from console.roles import Principal, Right
from console.web import Web, json_response
from schemas.budgets import OrgConfig
from schemas.config_records import close_record
from schemas.errors import ConflictError
from schemas.focus_export import (
    ExportError,
    PeriodClose,
    closable_month,
    decode_cursor,
    encode_cursor,
    parse_export,
)
from sinks.focus import ExportSource, focus_rows, page_end, settled_end

__all__ = ["Exports"]


class Exports:
    def __init__(self, web: Web, store: ExportSource, settle_s: float, max_rows: int) -> None:
        self.web, self.store, self.settle_s, self.max_rows = web, store, settle_s, max_rows

    def _closes(self, org_id: str) -> list[PeriodClose]:
        state = self.web.reader.config.state()
        return [close for (org, _), close in sorted(state.closes.items()) if org == org_id]

    async def focus(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        require(principal, Right.REPORTS)
        asked = parse_export(dict(request.query_params), self.max_rows)
        org = self.web.reader.config.state().orgs.get(principal.org_id, OrgConfig(principal.org_id))
        page = await run_in_threadpool(page_end, self.store, principal.org_id, asked.after, asked.limit, self.settle_s)
        end = page.end
        cursor = encode_cursor(end)
        headers = {
            "X-Next-Cursor": cursor,
            "X-Row-Count": str(page.rows),
            "X-Event-Count": str(page.events),
            "Cache-Control": "no-store",
        }
        if page.events == asked.limit:  # there may be more: the next page starts here
            query = {**request.query_params, "cursor": cursor}
            headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
        if page.events == 0:
            return Response(b"", media_type=asked.media_type, headers=headers)
        done = f"{page.rows} rows of {page.events} events"
        await run_in_threadpool(
            self.web.access.audit, principal.org_id, principal.name, "export.focus", done, None, None
        )
        rows = focus_rows(
            self.store,
            principal.org_id,
            org.timezone,
            self._closes(principal.org_id),
            asked.after,
            end,
            asked.version,
            asked.clickhouse_format,
        )
        return StreamingResponse(rows, media_type=asked.media_type, headers=headers)

    async def closes(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        require(principal, Right.REPORTS)
        if request.method == "GET":
            return json_response({"items": [_close_view(c) for c in self._closes(principal.org_id)]})
        close = await run_in_threadpool(self._close, principal, body)  # reads and publishes config.v1
        return json_response(_close_view(close), status=201)

    def _close(self, principal: Principal, body: dict[str, Any]) -> PeriodClose:
        org = self.web.reader.config.state().orgs.get(principal.org_id, OrgConfig(principal.org_id))
        month = closable_month(str(body.get("month", "")), datetime.now(ZoneInfo(org.timezone)).date())
        cursor = body.get("cursor")
        if cursor is None:  # everything stored up to now belongs to the month
            position = settled_end(self.store, principal.org_id, self.settle_s)
        elif not isinstance(cursor, str) or not cursor:
            raise ExportError("cursor", "the X-Next-Cursor of the last page pulled, or none for everything so far")
        else:
            position = decode_cursor(cursor)
        config = self.web.reader.config
        with config.edit_lock:
            closes = {m: c for (o, m), c in config.state(fresh=True).closes.items() if o == principal.org_id}
            if month in closes:
                raise ConflictError("month", f"{month:%Y-%m} is already closed; a close is permanent")
            latest = max((c.position for c in closes.values()), default=None)
            if latest is not None and position < latest:
                # rows between the two were exported as open-month rows: closing before them would reclassify them
                raise ExportError("cursor", "is before an earlier close's cursor; pass the last cursor you pulled")
            close = PeriodClose(principal.org_id, month, position, principal.name, datetime.now(UTC))
            config.publish([close_record(close)])
        self.web.access.audit(principal.org_id, principal.name, "export.close", f"{month:%Y-%m}", None, None)
        return close


def _close_view(close: PeriodClose) -> dict[str, Any]:
    return {
        "month": f"{close.month:%Y-%m}",
        "cursor": encode_cursor(close.position),
        "closed_by": close.closed_by,
        "closed_at": close.closed_at.isoformat(),
    }
