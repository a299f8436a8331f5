"""The API of what finance edits beside the reports: saved report templates
(``/api/v1/reports/templates``, one at ``/{name}``, ``POST /{name}/run`` to run one now) and the org's
chargeback rule (``/api/v1/chargeback``). Replacing or deleting needs the version read (``If-Match``),
as for budgets; the rights, the checks and the audit are :mod:`console.report_actions`'s."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from console.report_actions import ReportActions
from console.report_settings import template_version
from console.roles import Principal
from console.web import error_response, json_response

__all__ = ["ReportApi"]


class ReportApi:
    def __init__(self, settings: ReportActions) -> None:
        self.settings = settings

    async def templates(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        if request.method == "POST":
            name = str(body.get("name") or "")
            saved = await run_in_threadpool(self.settings.save_template, principal, name, body, None, True)
            view = self.settings.view(principal, saved)
            headers = {"ETag": view["version"], "Location": f"/api/v1/reports/templates/{saved.name}"}
            return json_response(view, 201, headers)
        return json_response({"items": await run_in_threadpool(self.settings.templates, principal)})

    async def template(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        name = request.path_params["name"]
        if request.method == "GET":
            found = await run_in_threadpool(self.settings.template, principal, name)
            return json_response(self.settings.view(principal, found), headers={"ETag": template_version(found)})
        if_match = request.headers.get("if-match")
        if if_match is None:
            return error_response(428, "If-Match", "send the template's version (its ETag) to change or delete it")
        if request.method == "DELETE":
            await run_in_threadpool(self.settings.delete_template, principal, name, if_match)
            return Response(status_code=204)
        if "name" in body and body["name"] != name:
            return error_response(400, "name", "a template's name is its key; save a new one to rename it")
        saved = await run_in_threadpool(self.settings.save_template, principal, name, body, if_match, False)
        view = self.settings.view(principal, saved)
        return json_response(view, headers={"ETag": view["version"]})

    async def run(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        asked = await run_in_threadpool(self.settings.run_now, principal, request.path_params["name"])
        return json_response(self.settings.view(principal, asked), 202)

    async def chargeback(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        if request.method == "GET":
            view = await run_in_threadpool(self.settings.chargeback, principal)
            return json_response(view, headers={"ETag": view["version"]})
        if_match = request.headers.get("if-match")
        if if_match is None:
            return error_response(428, "If-Match", "send the rule's version (its ETag) to change it")
        view = await run_in_threadpool(self.settings.save_chargeback, principal, body, if_match)
        return json_response(view, headers={"ETag": view["version"]})
