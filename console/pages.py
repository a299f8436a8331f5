"""The console's pages: sign-in, Overview (Admin > Billing), Budget Settings, Alerts and Access."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console.access_store import SESSION_TTL_S, Session
from console.actions import require
from console.budget_edit import budget_view
from console.channel_edit import channel_view
from console.credentials import new_secret, same
from console.roles import Principal, Right, Role
from console.sso_pages import SsoPages, safe_next
from console.sso_rules import rules_text, sso_from_form
from console.tag_settings import TagSettings, tags_from_form, tags_text, tags_version
from console.web import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Web
from reports import charts
from schemas.budgets import Period, ScopeKind
from schemas.channels import ROUTABLE_KINDS
from schemas.errors import ForbiddenError, PreconditionError, SpendstreamError

__all__ = ["Pages"]

# what a page says after a change: chosen by a code in the URL, never the URL's own text
NOTICES = {
    "channel-saved": "Saved the alert channel.",
    "channel-deleted": "Deleted the alert channel.",
    "routing-saved": "Saved the org's alert routing.",
    "tags-saved": "Saved the allocation tags: events stored from now on carry them.",
}


def _notice(params: Mapping[str, str], keys: set[str]) -> str | None:
    """The success banner of Budget Settings: a fixed message, or a budget key the principal sees."""
    if params.get("done") in NOTICES:
        return NOTICES[params["done"]]
    if params.get("saved") in keys:
        return f"Saved budget {params['saved']}: it is enforced within seconds."
    if params.get("deleted"):
        return "Deleted the budget."
    return None


class Pages:
    def __init__(self, web: Web, sso: SsoPages) -> None:
        self.web = web
        self.sso = sso
        self._vega: str | None = None

    async def login_page(self, request: Request) -> Response:
        token = new_secret()
        response = self.web.render(
            request, "login.html", None, None, {"login_csrf": token, "next": request.query_params.get("next", "")}
        )
        self._cookie(response, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return response

    async def login(self, request: Request) -> Response:
        form = await request.form()
        org, username = str(form.get("org", "")).strip(), str(form.get("username", ""))
        password = str(form.get("password", ""))
        address = request.client.host if request.client else "-"  # behind a proxy: only from trusted_proxies
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not same(cookie, str(form.get("csrf", ""))):
            return self._login_again(request, "Your sign-in form expired; please try again.", org, username, 403)
        began = time.time()
        # counted before it is checked; keyed by the name alone, so that naming the org or not gives no new guesses
        wait = self.web.throttle.begin(username, address, began)
        if wait > 0:
            self.web.metrics.sign_ins.labels("throttled").inc()
            message = f"Too many failed sign-ins; try again in {int(wait) + 1} s."
            return self._login_again(request, message, org, username, 429, {"Retry-After": str(int(wait) + 1)})
        found = await run_in_threadpool(self.web.access.check_password, org, username, password)
        if found is None:
            self.web.metrics.sign_ins.labels("failed").inc()
            return self._login_again(request, "Wrong organisation, username or password.", org, username, 401)
        self.web.throttle.succeeded(username, address, began)
        gate = await run_in_threadpool(self.sso.password_gate, found[0], username)
        if gate == "refused":
            self.web.metrics.sign_ins.labels("sso_only").inc()
            self.web.access.audit(found[0], username, "sso.password_refused", username, None, None)
            message = "Your organisation signs in through its identity provider: use single sign-on below."
            return self._login_again(request, message, found[0], username, 403)
        if gate == "break_glass":
            self.web.access.audit(found[0], username, "sso.break_glass", username, None, {"role": found[1].value})
        self.web.metrics.sign_ins.labels("ok").inc()
        session_id, _ = await run_in_threadpool(self.web.access.open_session, found[0], username, SESSION_TTL_S)
        response = RedirectResponse(safe_next(str(form.get("next", ""))), 303)
        self._cookie(response, SESSION_COOKIE, session_id)
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    def _login_again(
        self,
        request: Request,
        error: str,
        org: str,
        username: str,
        status: int,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        token = new_secret()
        context = {"login_csrf": token, "error": error, "org": org, "username": username}
        response = self.web.render(request, "login.html", None, None, context, status)
        response.headers.update(headers or {})
        self._cookie(response, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return response

    def _cookie(self, response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, samesite="lax", secure=self.web.secure_cookies, path="/"
        )

    async def logout(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            await run_in_threadpool(self.web.access.sign_out, session_id)
        at_provider = await self.sso.end_session_url(principal) if session else None
        response = RedirectResponse(at_provider or "/login", 303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # -- pages ----------------------------------------------------------------------------------------------------

    async def overview_page(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        overview = await run_in_threadpool(self.web.reader.overview, principal, request.query_params.get("department"))
        specs = {"daily": charts.daily_spend(overview.daily), "models": charts.tokens_by_model(overview.by_model)}
        if overview.forecast:
            f = overview.forecast
            specs["forecast"] = charts.forecast_cone(
                f["spent_nanos"],
                f["p10_nanos"],
                f["p50_nanos"],
                f["p90_nanos"],
                f["budget_nanos"],
                "Projected month end",
            )
        return self.web.render(request, "overview.html", principal, session, {"o": overview, "specs": specs})

    async def budgets_page(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        return await self._budgets(request, principal, session, {}, None, {})

    async def _budgets(
        self,
        request: Request,
        principal: Principal,
        session: Session | None,
        values: Mapping[str, Any],
        error: SpendstreamError | None,
        extra: Mapping[str, Any],
        status: int = 200,
    ) -> Response:
        now = datetime.now(UTC)
        budgets = await run_in_threadpool(self.web.reader.visible_budgets, principal, now)
        editing = request.query_params.get("edit")
        if editing and not values:
            found = await run_in_threadpool(self.web.actions.budget, principal, editing)
            view = budget_view(found)
            values = {**view, "stages": ",".join(str(s) for s in found.stages)}
            for route, names in found.alerts.items():  # the form edits one route; the API edits them all
                values = {**values, "route_stage": route, "route_channel": names[0] if names else ""}
        state = self.web.reader.config.state()
        channels = sorted(name for org, name in state.channels if org == principal.org_id)
        routing = state.routing.get(principal.org_id)
        org = self.web.reader.org(principal)
        may_edit = principal.can(Right.EDIT_BUDGETS) or principal.can(Right.EDIT_USER_BUDGETS)
        context = {
            "notice": _notice(request.query_params, {b.key for b in budgets}),
            "budgets": [budget_view(b) for b in budgets],
            "values": values,
            "error": error,
            "scopes": [k.value for k in ScopeKind] if principal.can(Right.EDIT_BUDGETS) else ["user"],
            "periods": [p.value for p in Period],
            "channels": channels,
            "channel_views": [channel_view(state.channels[(principal.org_id, n)]) for n in channels]
            if principal.can(Right.EDIT_CHANNELS)
            else [],  # recipients (numbers, addresses) and routing are shown to who may change them
            "routing": {"default": routing.default, **routing.by_kind}
            if routing and principal.can(Right.EDIT_CHANNELS)
            else {},
            "routable": ("default", *ROUTABLE_KINDS),
            "may_edit": may_edit,
            "may_edit_channels": principal.can(Right.EDIT_CHANNELS),
            "tags": {"text": tags_text(org.tags), "trust": org.trust_request_tags, "version": tags_version(org)},
            "may_edit_tags": principal.can(Right.EDIT_BUDGETS),
            **extra,
        }
        return self.web.render(request, "budgets.html", principal, session, context, status)

    async def budgets_save(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        ignored = ("csrf", "version", "route_stage", "route_channel", "action")
        data = {k: v for k, v in form.items() if k not in ignored}
        stage, channel = str(form.get("route_stage", "")), str(form.get("route_channel", ""))
        if channel:
            data["alerts"] = {stage or "100": [channel]}
        version = str(form.get("version", "")) or None
        if form.get("action") == "preview":
            try:
                budget, periods = await run_in_threadpool(self.web.actions.preview, principal, data)
            except SpendstreamError as exc:
                return await self._budgets(request, principal, session, dict(form), exc, {}, exc.status)
            extra = {"preview": periods, "previewed": budget}
            return await self._budgets(request, principal, session, dict(form), None, extra)
        try:
            budget = await run_in_threadpool(self.web.actions.save_budget, principal, data, version, version is None)
        except SpendstreamError as exc:
            return await self._budgets(request, principal, session, dict(form), exc, {}, exc.status)
        return RedirectResponse(f"/billing/budgets?saved={quote(budget.key)}", 303)

    async def channels_save(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        """Save or delete an alert channel, or save the org's routing (``action``)."""
        action, actions = str(form.get("action", "")), self.web.actions
        try:
            if action == "delete":
                await run_in_threadpool(actions.delete_channel, principal, str(form.get("name", "")))
                done = "channel-deleted"
            elif action == "routing":
                await run_in_threadpool(actions.save_routing, principal, dict(form))
                done = "routing-saved"
            else:
                await run_in_threadpool(actions.save_channel, principal, dict(form))
                done = "channel-saved"
        except SpendstreamError as exc:
            key = "routing_error" if action == "routing" else "channel_error"
            return await self._budgets(
                request, principal, session, {}, None, {key: exc, "channel_values": form}, exc.status
            )
        return RedirectResponse(f"/billing/budgets?done={done}#channels-h", 303)

    async def tags_save(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        """Save the org's allocation tags from Budget Settings."""
        settings = TagSettings(self.web.reader, self.web.access)
        try:
            data = tags_from_form(form)
            await run_in_threadpool(settings.save, principal, data, str(form.get("version", "")) or None)
        except SpendstreamError as exc:
            extra = {"tags_error": exc, "tags_values": form}
            return await self._budgets(request, principal, session, {}, None, extra, exc.status)
        return RedirectResponse("/billing/budgets?done=tags-saved#tags-h", 303)

    async def budgets_delete(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        key, version = str(form.get("key", "")), str(form.get("version", "")) or None
        try:
            await run_in_threadpool(self.web.actions.delete_budget, principal, key, version)
        except (PreconditionError, ForbiddenError) as exc:  # anything else is the error page's
            return await self._budgets(request, principal, session, {}, exc, {}, exc.status)
        return RedirectResponse(f"/billing/budgets?deleted={quote(key)}", 303)

    async def alerts_page(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        require(principal, Right.READ_ALL)
        now = datetime.now(UTC)
        alerts = await run_in_threadpool(self.web.reader.alerts, principal, now, 200)
        spikes = await run_in_threadpool(self.web.reader.spikes, principal, now, 50)
        incidents = await run_in_threadpool(self.web.reader.incidents, principal)
        context = {"alerts": alerts, "spikes": spikes, "incidents": incidents}
        return self.web.render(request, "alerts.html", principal, session, context)

    async def access_page(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        require(principal, Right.MANAGE_ACCESS)
        context: dict[str, Any] = {"roles": [r.value for r in Role]}
        if request.method == "POST":
            actions = self.web.actions
            try:
                action = form.get("action")
                if action == "revoke":
                    await run_in_threadpool(actions.revoke_token, principal, str(form.get("id", "")))
                elif action == "add-user":
                    fields = [str(form.get(k, "")) for k in ("username", "password", "role", "departments")]
                    await run_in_threadpool(actions.create_user, principal, *fields)
                    context["done"] = "Added the user."
                elif action == "set-role":
                    fields = [str(form.get(k, "")) for k in ("username", "role", "departments")]
                    await run_in_threadpool(actions.set_role, principal, *fields)
                    context["done"] = "Changed the role of the user."
                elif action in ("save-sso", "remove-sso"):
                    body = sso_from_form(form) if action == "save-sso" else None
                    await run_in_threadpool(self.sso.save, principal, body)
                    context["done"] = "Saved single sign-on." if body else "Removed single sign-on."
                elif action == "remove-user":
                    await run_in_threadpool(actions.delete_user, principal, str(form.get("username", "")))
                    context["done"] = "Removed the user and revoked the API tokens they made."
                else:
                    departments = str(form.get("departments", ""))
                    name, role = str(form.get("name", "")), str(form.get("role", ""))
                    context["new_token"] = await run_in_threadpool(
                        actions.create_token, principal, name, role, departments
                    )
            except SpendstreamError as exc:
                context["error"] = exc
        context["users"] = self.web.access.users(principal.org_id)
        context["tokens"] = self.web.access.tokens(principal.org_id)
        context["audit"] = self.web.access.audit_trail(principal.org_id, limit=30)
        context["sso"] = sso = self.sso.settings(principal.org_id)
        context["sso_rules"] = rules_text(sso)
        context["redirect_uri"] = self.sso.redirect_uri
        return self.web.render(request, "access.html", principal, session, context, 400 if "error" in context else 200)

    async def vega(self, request: Request) -> Response:
        if self._vega is None:
            self._vega = await run_in_threadpool(self.web.vega_bundle) if self.web.vega_bundle else ""
        return Response(self._vega, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    # -- API ------------------------------------------------------------------------------------------------------
