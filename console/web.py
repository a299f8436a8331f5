"""What the console's pages and API share: who is asking (session cookie or API token, never the
request), CSRF on every state change made with a session, errors that name the field, rendering.

Starlette (the ASGI toolkit the decision service already runs on) with Jinja2 templates, rendered on
the server: pages work without JavaScript, and the only script is the charts' (the ``vega-embed``
bundle that ``vl-convert-python`` ships, served by the console, never from a CDN).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from console.access_store import AccessStore, Session
from console.actions import Actions
from console.credentials import same
from console.metrics import ConsoleMetrics
from console.roles import Principal, Right
from console.throttle import SignInThrottle
from schemas.alerts import spike_comparison
from schemas.errors import ForbiddenError, SpendstreamError
from schemas.money import format_usd

__all__ = ["LOGIN_CSRF_COOKIE", "SESSION_COOKIE", "Web", "error_response", "json_default", "json_response"]

log = logging.getLogger("spendstream.console")

HERE = Path(__file__).parent
SESSION_COOKIE = "spendstream_session"
LOGIN_CSRF_COOKIE = "spendstream_login_csrf"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

Handler = Callable[[Request], Awaitable[Response]]


class Unauthenticated(Exception):  # noqa: N818 - a control-flow signal, not an error
    pass


def json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(data, default=json_default, separators=(",", ":"))
    return Response(body, status, headers=dict(headers or {}), media_type="application/json")


def error_response(status: int, field: str, reason: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response({"error": {"field": field, "reason": reason}}, status, headers)


class Web:
    """What every page and API call shares: the console's parts, who is asking, CSRF, rendering."""

    def __init__(
        self,
        actions: Actions,
        access: AccessStore,
        throttle: SignInThrottle,
        metrics: ConsoleMetrics,
        secure_cookies: bool = False,
        vega_bundle: Callable[[], str] | None = None,
    ) -> None:
        self.actions = actions
        self.reader = actions.reader
        self.access = access
        self.throttle = throttle
        self.metrics = metrics
        self.secure_cookies = secure_cookies
        self.vega_bundle = vega_bundle
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
        self.templates = Jinja2Templates(env=env)
        self.templates.env.filters["usd"] = lambda nanos: format_usd(int(nanos or 0))
        self.templates.env.filters["num"] = lambda n: f"{int(n or 0):,}"
        self.templates.env.filters["spike"] = lambda s: spike_comparison(
            int(s["observed_nanos"]), int(s["expected_nanos"])
        )
        self.templates.env.filters["pct"] = lambda x: f"{float(x or 0) * 100:.1f}%"
        self.templates.env.filters["ts"] = lambda at: datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        # |tojson escapes <, >, & and ' so that data in a <script> element cannot end it
        env.policies["json.dumps_kwargs"] = {"default": json_default, "sort_keys": False}

    # -- who is asking --------------------------------------------------------------------------------------------

    def _who(self, request: Request) -> tuple[Principal, Session | None]:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            principal = self.access.token(auth[7:].strip())
            if principal is None:
                raise Unauthenticated
            return principal, None
        session_id = request.cookies.get(SESSION_COOKIE)
        session = self.access.session(session_id) if session_id else None
        if session is None:
            raise Unauthenticated
        return session.principal, session

    def _check_csrf(self, request: Request, session: Session | None, form: Mapping[str, Any]) -> None:
        if session is None or request.method not in _UNSAFE:
            return  # a token is not sent by a browser on its own: no CSRF to fear
        sent = request.headers.get("x-csrf-token") or str(form.get("csrf", ""))
        if not sent or not same(sent, session.csrf):
            raise ForbiddenError("csrf", "missing or wrong CSRF token; reload the page")

    def page(
        self, handler: Callable[[Request, Principal, Session | None, Mapping[str, Any]], Awaitable[Response]]
    ) -> Handler:
        """A page: unauthenticated visitors go to the sign-in page; errors are shown, not raised."""

        async def endpoint(request: Request) -> Response:
            began = time.perf_counter()
            try:
                principal, session = await run_in_threadpool(self._who, request)
            except Unauthenticated:
                return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
            form: Mapping[str, Any] = await request.form() if request.method in _UNSAFE else {}
            try:
                self._check_csrf(request, session, form)
                response = await handler(request, principal, session, form)
            except SpendstreamError as exc:  # its status says which answer (schemas.errors)
                response = self.render(request, "error.html", principal, session, {"error": exc}, exc.status)
            self.metrics.observe(handler.__name__, began)
            return response

        return endpoint

    def api(self, handler: Callable[[Request, Principal, dict[str, Any]], Awaitable[Response]]) -> Handler:
        """An API endpoint: JSON in and out, errors as ``{"error": {"field", "reason"}}``."""

        async def endpoint(request: Request) -> Response:
            began = time.perf_counter()
            try:
                principal, session = await run_in_threadpool(self._who, request)
            except Unauthenticated:
                return error_response(401, "authorization", "sign in, or send an API token as 'Authorization: Bearer'")
            body: dict[str, Any] = {}
            if request.method in ("POST", "PUT", "PATCH"):
                try:
                    body = json.loads(await request.body() or b"{}")
                except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, a huge number, deep nesting
                    reason = str(exc) if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
                    return error_response(400, "body", f"not a JSON object this API reads: {reason}"[:300])
                if not isinstance(body, dict):
                    return error_response(400, "body", "expected a JSON object")
            try:
                self._check_csrf(request, session, {})
                response = await handler(request, principal, body)
            except SpendstreamError as exc:  # its status says which answer (schemas.errors)
                response = error_response(exc.status, exc.field, exc.reason)
            self.metrics.observe("api:" + handler.__name__, began)
            return response

        return endpoint

    def render(
        self,
        request: Request,
        template: str,
        principal: Principal | None,
        session: Session | None,
        context: Mapping[str, Any],
        status: int = 200,
    ) -> Response:
        base = {
            "principal": principal,
            "csrf": session.csrf if session else "",
            "path": request.url.path,
            "Right": Right,
        }
        response: Response = self.templates.TemplateResponse(request, template, {**base, **context}, status_code=status)
        return response

    # -- sign-in --------------------------------------------------------------------------------------------------
