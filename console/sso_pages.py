"""Single sign-on's routes: the redirect to the org's provider, the callback that lets the user in (or
says clearly why not, in the page and the audit trail), the password gate of orgs that require it, the
provider's logout, and the settings (owners only)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console.actions import require
from console.credentials import same
from console.id_tokens import SsoRefused
from console.oidc import OidcClient
from console.roles import Principal, Right, Role
from console.sso_rules import SsoSettings, parse_sso, role_for, username_hint
from console.sso_store import FLOW_TTL_S, Flow, SsoStore
from console.web import SESSION_COOKIE, Web, json_response
from schemas.errors import SpendstreamError
from schemas.webhook_targets import prefix_shared_by

__all__ = ["SSO_COOKIE", "SsoPages"]

log = logging.getLogger("spendstream.console")
SSO_COOKIE = "spendstream_sso"


def safe_next(target: str) -> str:
    """Where to go after signing in: a path of this console, never another site."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/billing"


class SsoPages:
    def __init__(self, web: Web, store: SsoStore, client: OidcClient, public_url: str) -> None:
        self.web = web
        self.store = store
        self.client = client
        self.redirect_uri = public_url.rstrip("/") + "/login/sso/callback"
        self.login_url = public_url.rstrip("/") + "/login"

    def settings(self, org_id: str) -> SsoSettings | None:
        body = self.store.settings(org_id)
        if body is None:
            return None
        try:
            return parse_sso(org_id, body, self.client.allow)
        except SpendstreamError as exc:  # saved under an allow-list the operator has since narrowed
            log.warning("org %s: its single sign-on settings no longer hold: %s", org_id, exc)
            return None

    # -- passwords ------------------------------------------------------------------------------------------------

    def password_gate(self, org_id: str, username: str) -> str:
        """``ok``, ``break_glass`` (allowed, and audited) or ``refused``, for a right password."""
        settings = self.settings(org_id)
        if settings is None or not settings.required:
            return "ok"
        return "break_glass" if username in settings.break_glass else "refused"

    # -- sign-in --------------------------------------------------------------------------------------------------

    def _refused(self, request: Request, refusal: SsoRefused, org_id: str, issuer: str, subject: str = "") -> Response:
        self.web.metrics.sign_ins.labels("sso_refused").inc()
        if org_id and refusal.field != "busy":  # a flood is counted (the metric), not written to the trail
            actor = f"sso:{subject}" if subject else "sso"
            after = {"reason": refusal.field, "detail": refusal.reason}
            self.web.access.audit(org_id, actor, "sso.refused", issuer or "-", None, after)
        log.info("single sign-on refused (org %s): %s: %s", org_id or "-", refusal.field, refusal.reason)
        context = {"refusal": refusal, "org": org_id}
        response = self.web.render(request, "sso_refused.html", None, None, context, refusal.status)
        response.delete_cookie(SSO_COOKIE)
        return response

    async def start(self, request: Request) -> Response:
        """``GET /login/sso?org=``: off to the org's provider, with a new flow kept here."""
        org_id = request.query_params.get("org", "").strip()
        settings = await run_in_threadpool(self.settings, org_id) if org_id else None
        if settings is None:
            refusal = SsoRefused("org", f"organisation {org_id!r} does not sign in through an identity provider")
            refusal.status = 404
            return self._refused(request, refusal, "", "")
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        flow = Flow(org_id, state, nonce, verifier, safe_next(request.query_params.get("next", "")))
        try:
            info = await self.client.provider(settings.issuer)
            flow_id = await run_in_threadpool(self.store.start_flow, flow)
        except SsoRefused as refusal:
            return self._refused(request, refusal, org_id, settings.issuer)
        url = self.client.authorization_url(settings, info, self.redirect_uri, state, nonce, verifier)
        if request.query_params.get("via") == "form":
            # the sign-in page's form: the console's CSP (form-action 'self') forbids a form's redirect to
            # another site, so the browser is sent on by a page of its own (a link, and a refresh)
            response = self.web.render(request, "sso_continue.html", None, None, {"url": url})
        else:  # a link to /login/sso?org= (a bookmark, the provider's app tile)
            response = RedirectResponse(url, 303)
        response.set_cookie(
            SSO_COOKIE, flow_id, max_age=FLOW_TTL_S, httponly=True, samesite="lax", secure=self.web.secure_cookies
        )
        return response

    async def callback(self, request: Request) -> Response:
        """``GET /login/sso/callback``: the provider sends the browser back with a code (or an error)."""
        params = request.query_params
        try:
            flow = await run_in_threadpool(self.store.take_flow, request.cookies.get(SSO_COOKIE, ""))
        except SsoRefused as refusal:
            return self._refused(request, refusal, refusal.org_id, "")
        settings = await run_in_threadpool(self.settings, flow.org_id)
        if settings is None:
            refused = SsoRefused("org", "the organisation no longer signs in through an identity provider")
            return self._refused(request, refused, flow.org_id, "")
        subject = ""
        try:
            if not same(params.get("state", ""), flow.state):
                raise SsoRefused("state", "the sign-in's state does not match the one this browser began with")
            if "error" in params:
                detail = params.get("error_description") or params["error"]
                raise SsoRefused("provider", f"the identity provider did not sign you in: {detail[:200]}")
            if "iss" in params and params["iss"] != settings.issuer:  # RFC 9207: a mix-up of providers
                raise SsoRefused("issuer", "the answer names another issuer than the organisation's")
            info = await self.client.provider(settings.issuer)
            token = await self.client.exchange(settings, info, params.get("code", ""), self.redirect_uri, flow.verifier)
            claims = await self.client.verify(settings, info, token, flow.nonce)
            subject = str(claims["sub"])
            rule = role_for(settings, claims)
            if rule is None:
                removed = await run_in_threadpool(self.store.deprovision, flow.org_id, settings.issuer, subject)
                if removed:
                    self.web.access.audit(flow.org_id, f"sso:{subject}", "user.delete", removed,
                                          None, {"tokens": "revoked", "why": "no group maps to a role"})  # fmt: skip
                raise SsoRefused("unmapped", "your account at the identity provider is in no group (and has no "
                                 "email domain) that this organisation lets into the console")  # fmt: skip
        except SsoRefused as refusal:
            return self._refused(request, refusal, flow.org_id, settings.issuer, subject)
        done = await run_in_threadpool(
            self.store.provision, flow.org_id, settings.issuer, subject, username_hint(claims),
            rule.role, rule.departments, settings.session_minutes * 60.0,
        )  # fmt: skip
        self._audit_sign_in(flow.org_id, subject, done.session.principal, done.before, rule.text())
        self.web.metrics.sign_ins.labels("sso_ok").inc()
        response = RedirectResponse(flow.next, 303)
        response.set_cookie(SESSION_COOKIE, done.session_id, httponly=True, samesite="lax",
                            secure=self.web.secure_cookies)  # fmt: skip
        response.delete_cookie(SSO_COOKIE)
        return response

    def _audit_sign_in(
        self, org_id: str, subject: str, who: Principal, before: tuple[Role, tuple[str, ...]] | None, rule: str
    ) -> None:
        after = {"role": who.role.value, "departments": list(who.departments)}
        if before is None:
            self.web.access.audit(org_id, f"sso:{subject}", "user.create", who.name, None, after)
        elif before != (who.role, who.departments):
            shown = {"role": before[0].value, "departments": list(before[1])}
            self.web.access.audit(org_id, f"sso:{subject}", "sso.role_change", who.name, shown, after)
        self.web.access.audit(org_id, who.name, "sso.sign_in", who.name, None, after | {"rule": rule})

    async def end_session_url(self, principal: Principal) -> str | None:
        """Where the browser goes to sign out at the provider too (RP-initiated logout), if it offers it."""
        issuer = await run_in_threadpool(self.store.issuer_of, principal.org_id, principal.user)
        settings = await run_in_threadpool(self.settings, principal.org_id) if issuer else None
        if settings is None or settings.issuer != issuer:
            return None
        try:
            info = await self.client.provider(issuer)
        except SsoRefused:
            return None
        if not info.end_session_endpoint:
            return None
        query = urlencode({"client_id": settings.client_id, "post_logout_redirect_uri": self.login_url})
        return f"{info.end_session_endpoint}?{query}"

    # -- settings (owners) ----------------------------------------------------------------------------------------

    def save(self, principal: Principal, body: Mapping[str, Any] | None) -> SsoSettings | None:
        """Store the org's settings (None: remove them); audited, secrets stay references."""
        require(principal, Right.MANAGE_ACCESS)
        settings = None if body is None else parse_sso(principal.org_id, body, self.client.allow)
        if settings is not None:
            users = self.web.access.users(principal.org_id)
            owners = {u.username for u in users if u.role == Role.OWNER and not u.sso}
            for name in settings.break_glass:
                if name not in owners:
                    raise SpendstreamError("break_glass", f"{name!r} is not an owner of your org with a password")
            known = self.store.orgs() | set(self.web.actions.config.state().orgs)
            shared = prefix_shared_by(principal.org_id, known)  # its env:NAME would name that org's secrets too
            if shared is not None:
                reason = f"org {shared} has the same secret prefix; ask the operator to configure secrets"
                raise SpendstreamError("client_secret", reason)
        before = self.settings(principal.org_id)
        ended = self.store.save_settings(
            principal.org_id, settings.view() if settings else None, principal.name,
            settings.break_glass if settings else (),
        )  # fmt: skip
        self.web.access.audit(principal.org_id, principal.name, "sso.settings", "sso",
                              before.view() if before else None,
                              (settings.view() | {"sessions_ended": ended}) if settings else None)  # fmt: skip
        return settings

    async def api(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        """``GET|PUT|DELETE /api/v1/sso``."""
        require(principal, Right.MANAGE_ACCESS)
        if request.method == "PUT":
            saved = await run_in_threadpool(self.save, principal, body)
        elif request.method == "DELETE":
            saved = await run_in_threadpool(self.save, principal, None)
        else:
            saved = await run_in_threadpool(self.settings, principal.org_id)
        return json_response({"sso": saved.view() if saved else None})
