"""The admin API under ``/api/v1``: JSON for everything the pages show and change, through the same
read models and actions as the pages. Errors are ``{"error": {"field", "reason"}}``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from console.actions import require
from console.budget_edit import budget_view, missing_for_replace, patched, version_of
from console.channel_edit import channel_view
from console.openapi import openapi_document
from console.roles import Principal, Right
from console.tag_settings import TagSettings
from console.web import Web, error_response, json_response
from schemas.params import whole_number

__all__ = ["Api"]


class Api:
    def __init__(self, web: Web) -> None:
        self.web = web
        self.tags = TagSettings(web.reader, web.access)

    async def api_tags(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        """The org's allocation tags: GET for anyone who reads the org, PUT (If-Match) for owners and admins."""
        if request.method == "GET":
            view = await run_in_threadpool(self.tags.view, principal)
            return json_response(view, headers={"ETag": view["version"]})
        if_match = request.headers.get("if-match")
        if if_match is None:
            return error_response(428, "If-Match", "send the tags' version (their ETag) to change them")
        view = await run_in_threadpool(self.tags.save, principal, body, if_match)
        return json_response(view, headers={"ETag": view["version"]})

    async def api_overview(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        overview = await run_in_threadpool(self.web.reader.overview, principal, request.query_params.get("department"))
        return json_response(asdict(overview))

    async def api_budgets(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        if request.method == "POST":
            budget = await run_in_threadpool(self.web.actions.save_budget, principal, body, None, True)
            view = budget_view(budget)
            return json_response(view, 201, {"ETag": view["version"], "Location": f"/api/v1/budgets/{budget.key}"})
        cursor = request.query_params.get("cursor", "")
        limit = whole_number(request.query_params.get("limit", "100"), "limit", 1, 1000)
        budgets = await run_in_threadpool(self.web.reader.visible_budgets, principal, datetime.now(UTC))
        page = [b for b in budgets if b.key > cursor][:limit]
        more = len([b for b in budgets if b.key > cursor]) > limit
        return json_response(
            {"items": [budget_view(b) for b in page], "next_cursor": page[-1].key if more and page else None}
        )

    async def api_preview(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        budget, periods = await run_in_threadpool(self.web.actions.preview, principal, body)
        return json_response({"budget": budget_view(budget), "periods": [asdict(p) for p in periods]})

    async def api_budget(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        key = request.path_params["key"]
        if request.method == "GET":
            budget = await run_in_threadpool(self.web.actions.budget, principal, key)
            return json_response(budget_view(budget), headers={"ETag": version_of(budget)})
        if_match = request.headers.get("if-match")
        if if_match is None:
            return error_response(428, "If-Match", "send the budget's version (its ETag) to change or delete it")
        if request.method == "DELETE":
            await run_in_threadpool(self.web.actions.delete_budget, principal, key, if_match)
            return Response(status_code=204)
        scope, _, rest = key.partition("/")
        scope_id, _, period = rest.rpartition("/")
        if request.method == "PATCH":  # change some fields, keep the rest as stored
            current = await run_in_threadpool(self.web.actions.stored_budget, principal, key)
            body = patched(current, body)
        else:
            missing = missing_for_replace(body)
            if missing:
                return error_response(
                    422, ",".join(missing), "PUT replaces the whole budget: send every field, or PATCH some"
                )
        body = {"scope": scope, "id": scope_id, "period": period, **body}
        if (body["scope"], body["id"], body["period"]) != (scope, scope_id, period):
            return error_response(
                400, "key", "scope, id and period are the budget's key; create a new budget to change them"
            )
        budget = await run_in_threadpool(self.web.actions.save_budget, principal, body, if_match, False)
        view = budget_view(budget)
        return json_response(view, headers={"ETag": view["version"]})

    async def api_channels(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        state = self.web.reader.config.state()
        items = [channel_view(spec) for (org, _), spec in sorted(state.channels.items()) if org == principal.org_id]
        if not principal.can(Right.EDIT_CHANNELS):  # names to route a budget's alerts to; no recipients, no routing
            return json_response({"items": [{"name": c["name"], "type": c["type"]} for c in items], "routing": {}})
        routing = state.routing.get(principal.org_id)
        route = (
            {"default": list(routing.default), **{k: list(v) for k, v in routing.by_kind.items()}} if routing else {}
        )
        return json_response({"items": items, "routing": route})

    async def api_channel(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        name = request.path_params["name"]
        if request.method == "DELETE":
            await run_in_threadpool(self.web.actions.delete_channel, principal, name)
            return Response(status_code=204)
        await run_in_threadpool(self.web.actions.save_channel, principal, {**body, "name": name})
        spec = self.web.reader.config.state().channels[(principal.org_id, name)]
        return json_response(channel_view(spec))

    async def api_routing(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        await run_in_threadpool(self.web.actions.save_routing, principal, body)
        return json_response(body)

    async def api_alerts(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        require(principal, Right.READ_ALL)
        alerts = await run_in_threadpool(self.web.reader.alerts, principal, datetime.now(UTC), 200)
        incidents = await run_in_threadpool(self.web.reader.incidents, principal)
        return json_response({"items": alerts, "open_incidents": incidents})

    async def api_audit(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        require(principal, Right.MANAGE_ACCESS)
        cursor = request.query_params.get("cursor")
        before = whole_number(cursor, "cursor", 1, 2**62) if cursor else None  # the next_cursor of the last page
        entries = self.web.access.audit_trail(principal.org_id, before, 50)
        items = [asdict(e) for e in entries]
        return json_response({"items": items, "next_cursor": str(entries[-1].id) if len(entries) == 50 else None})

    async def api_me(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        return json_response(
            {
                "org": principal.org_id,
                "name": principal.name,
                "role": principal.role.value,
                "departments": list(principal.departments),
            }
        )

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})
