"""Generate Report: the monthly summary, the department chargeback or a custom report, as PDF, XLSX or
CSV (a zip of one file per table), from the page and from ``POST /api/v1/reports``; owners, admins and
finance."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from console.actions import require
from console.budget_edit import ForbiddenError
from console.roles import Principal, Right
from console.store import Session
from console.web import Web
from reports.custom import custom_report
from reports.data import MONTHLY_KINDS, custom_data, monthly_data
from reports.filters import GROUPS, parse_filter, parse_month
from reports.generate import Format, ReportError
from reports.model import Report
from reports.monthly import monthly_report
from reports.render_csv import table_csv
from reports.render_pdf import render_pdf
from reports.render_xlsx import render_xlsx
from schemas.errors import SpendstreamError

__all__ = ["ReportPages"]

_TYPES = {
    Format.PDF: "application/pdf",
    Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class ReportPages:
    def __init__(self, web: Web) -> None:
        self.web = web

    def _report(self, principal: Principal, data: Mapping[str, Any]) -> Report:
        require(principal, Right.REPORTS)
        reader = self.web.reader
        org = reader.org(principal)
        today = datetime.now(ZoneInfo(org.timezone)).date()
        kind = data.get("kind", "monthly")
        if kind == "monthly" or kind in MONTHLY_KINDS:
            month = parse_month(str(data.get("month") or ""), today)
            state, now = reader.config.state(), datetime.now(UTC)
            if kind in MONTHLY_KINDS:
                read, build = MONTHLY_KINDS[kind]
                return build(read(reader.store, state, principal.org_id, month, now))
            return monthly_report(monthly_data(reader.store, state, principal.org_id, month, now))
        if kind != "custom":
            raise ReportError("kind", "monthly, chargeback, ledger, feature-roi, model-value or custom")
        wanted = parse_filter({k: str(v) for k, v in data.items() if v not in (None, "")}, org.timezone, today)
        return custom_report(custom_data(reader.store, principal.org_id, wanted, datetime.now(UTC)))

    def _file(self, principal: Principal, data: Mapping[str, Any]) -> Response:
        try:
            fmt = Format(str(data.get("format") or "pdf"))
        except ValueError:
            raise ReportError("format", "pdf, xlsx or csv") from None
        report = self._report(principal, data)
        if fmt is Format.CSV:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for table in report.tables:
                    archive.writestr(f"{report.slug}-{table.name}.csv", table_csv(table, bom=bool(data.get("bom"))))
            content, media, name = buffer.getvalue(), "application/zip", f"{report.slug}-csv.zip"
        else:
            content = render_pdf(report) if fmt is Format.PDF else render_xlsx(report)
            media, name = _TYPES[fmt], f"{report.slug}.{fmt.value}"
        self.web.access.audit(principal.org_id, principal.name, "report.generate", name, None, None)
        return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def reports_page(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        require(principal, Right.REPORTS)
        if request.method == "POST":
            try:
                return await run_in_threadpool(self._file, principal, dict(form))
            except ForbiddenError:
                raise
            except SpendstreamError as exc:  # a month, filter or format that cannot be used
                return self._form(request, principal, session, dict(form), exc, 400)
        return self._form(request, principal, session, {}, None, 200)

    def _form(
        self,
        request: Request,
        principal: Principal,
        session: Session | None,
        values: Mapping[str, Any],
        error: Any,
        status: int,
    ) -> Response:
        today = datetime.now(UTC).date()
        previous = date.fromordinal(today.replace(day=1).toordinal() - 1)
        context = {"values": values, "error": error, "groups": list(GROUPS), "default_month": f"{previous:%Y-%m}"}
        return self.web.render(request, "reports.html", principal, session, context, status)

    async def api_reports(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        return await run_in_threadpool(self._file, principal, body)
