"""Generate Report: the monthly summary, the department chargeback or a custom report, as PDF, XLSX or
CSV (a zip of one file per table), from the page and from ``POST /api/v1/reports``; the saved templates
(save, edit, pause, run now, delete) and the chargeback rule, through :mod:`console.report_actions`;
owners, admins and finance."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console.access_store import Session
from console.actions import require
from console.report_actions import ReportActions
from console.report_settings import (
    chargeback_form_values,
    chargeback_from_form,
    template_form_values,
    template_from_form,
)
from console.roles import Principal, Right
from console.web import Web, json_response
from reports.build import build_report
from reports.files import Format, ReportError, download, media_type
from reports.filters import GROUPS
from reports.model import Report
from schemas.errors import ForbiddenError, NotFoundError, SpendstreamError
from schemas.report_kinds import REPORT_KINDS, Coverage, forms
from sinks.report_runs import run_file, runs_of

__all__ = ["ReportPages"]


_NOTICES = {
    "saved": "Saved template {name}.",
    "paused": "Paused template {name}: it keeps its schedule but does not run on it.",
    "resumed": "Resumed template {name}: its next scheduled time runs.",
    "run": "Asked for a run of {name}: the report scheduler runs it within a minute and emails it.",
    "deleted": "Deleted template {name}.",
    "chargeback": "Saved the chargeback rule: the next chargeback report and journal use it.",
}


class ReportPages:
    def __init__(self, web: Web) -> None:
        self.web = web
        self.settings = ReportActions(web.reader, web.access)

    def _report(self, principal: Principal, data: Mapping[str, Any]) -> Report:
        require(principal, Right.REPORTS)
        reader = self.web.reader
        org = reader.org(principal)
        today = datetime.now(ZoneInfo(org.timezone)).date()
        params = {k: str(v) for k, v in data.items() if v not in (None, "")}
        kind = params.pop("kind", "monthly")
        return build_report(
            reader.store, reader.config.state(), principal.org_id, kind, today, datetime.now(UTC), params
        )

    def _file(self, principal: Principal, data: Mapping[str, Any]) -> Response:
        try:
            fmt = Format(str(data.get("format") or "pdf"))
        except ValueError:
            raise ReportError("format", "pdf, xlsx or csv") from None
        name, media, content = download(self._report(principal, data), fmt, bom=bool(data.get("bom")))
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
                return await self._form(request, principal, session, dict(form), exc, 400)
        return await self._form(request, principal, session, {}, None, 200)

    async def _form(
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
        templates = await run_in_threadpool(self.settings.templates, principal)
        saving: Mapping[str, Any] = values if values.get("form") == "template" else {}
        editing = request.query_params.get("template")
        if editing and not saving:
            saving = next((template_form_values(t) for t in templates if t["name"] == editing), {})
        chargeback = values if values.get("form") == "chargeback" else None
        tags = [rule.key for rule in self.web.reader.org(principal).tags]
        done, name = request.query_params.get("done", ""), request.query_params.get("name", "")
        context = {
            "values": values,
            "error": error,
            "groups": [*GROUPS, *(f"tag:{key}" for key in tags)],
            "labels": ["api_key", *(f"tag:{key}" for key in tags)],
            "tag_keys": tags,
            "month_forms": [(first, kinds) for first, kinds in forms() if first.coverage is Coverage.MONTH],
            "custom": next(k for k in REPORT_KINDS if k.coverage is Coverage.RANGE),
            "kinds": REPORT_KINDS,
            "default_month": f"{previous:%Y-%m}",
            "templates": templates,
            "saving": saving,
            "chargeback": chargeback or chargeback_form_values(self.settings.chargeback(principal)),
            "org_zone": self.web.reader.org(principal).timezone,
            "notice": _NOTICES[done].format(name=name[:64]) if done in _NOTICES else None,
            "runs": (await run_in_threadpool(self._runs, principal))[:20],
        }
        return self.web.render(request, "reports.html", principal, session, context, status)

    async def templates_save(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        """The Scheduled reports form and its rows' buttons: save, pause, resume, run, delete."""
        require(principal, Right.REPORTS)
        action, name = str(form.get("action") or "save"), str(form.get("name") or "").strip()
        version = str(form.get("version") or "") or None
        try:
            if action == "save":
                data = template_from_form(form, [f for f in _ticked(form) if f in {x.value for x in Format}])
                await run_in_threadpool(self.settings.save_template, principal, name, data, version, version is None)
                done = "saved"
            elif action in ("pause", "resume"):
                await run_in_threadpool(self.settings.set_paused, principal, name, action == "pause", version)
                done = "paused" if action == "pause" else "resumed"
            elif action == "run":
                await run_in_threadpool(self.settings.run_now, principal, name)
                done = "run"
            elif action == "delete":
                await run_in_threadpool(self.settings.delete_template, principal, name, version)
                done = "deleted"
            else:
                raise ReportError("action", "save, pause, resume, run or delete")
        except ForbiddenError:
            raise
        except SpendstreamError as exc:
            values = {**dict(form), "form": "template", "formats": _ticked(form)}
            return await self._form(request, principal, session, values, exc, exc.status)
        return RedirectResponse(f"/billing/reports?{urlencode({'done': done, 'name': name})}#s-h", 303)

    async def chargeback_save(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        require(principal, Right.REPORTS)
        version = str(form.get("version") or "") or None
        try:
            data = chargeback_from_form(form)
            await run_in_threadpool(self.settings.save_chargeback, principal, data, version)
        except ForbiddenError:
            raise
        except SpendstreamError as exc:
            values = {**dict(form), "form": "chargeback"}
            return await self._form(request, principal, session, values, exc, exc.status)
        return RedirectResponse("/billing/reports?done=chargeback#cb-h", 303)

    async def api_reports(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        return await run_in_threadpool(self._file, principal, body)

    def _runs(self, principal: Principal) -> list[dict[str, Any]]:
        require(principal, Right.REPORTS)
        return [
            {
                "run_id": run.run_id,
                "template": run.template,
                "due_at": run.due_at.isoformat(),
                "period": run.period,
                "attempt": run.attempt,
                "outcome": run.outcome,
                "error": run.error,
                "files": [f"/api/v1/reports/runs/{run.run_id}/files/{name}" for name in run.files],
                "recipients": run.recipients,
                "finished_at": run.finished_at.isoformat(),
            }
            for run in runs_of(self.web.reader.store, principal.org_id)
        ]

    async def api_runs(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        """The org's scheduled report runs, newest first, each with links to its files."""
        return json_response({"items": await run_in_threadpool(self._runs, principal)})

    async def api_run_file(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        """A file of a run, again."""
        require(principal, Right.REPORTS)
        run_id, name = request.path_params["run_id"], request.path_params["name"]
        content = await run_in_threadpool(run_file, self.web.reader.store, principal.org_id, run_id, name)
        if content is None:
            raise NotFoundError("name", f"run {run_id!r} has no file {name!r}")
        return Response(
            content, media_type=media_type(name), headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )


def _ticked(form: Mapping[str, Any]) -> list[str]:
    """The formats ticked on the form (a form field may repeat)."""
    getlist = getattr(form, "getlist", None)
    return [str(v) for v in getlist("formats")] if getlist else []
