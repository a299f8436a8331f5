"""The console's HTTP hardening, as one ASGI middleware: security headers on every response, and request
bodies over a limit refused (413) before they are read.

Headers: a Content-Security-Policy that admits only the console's own scripts (the charts' bundle
compiles Vega expressions, hence ``'unsafe-eval'``; no inline script is ever served), no framing
(``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), no referrer, no MIME sniffing, HSTS when the
console is served over TLS, and ``Cache-Control: no-store`` on everything but the static assets, so that
no page with figures or a freshly shown API token is kept by a browser or a proxy.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

__all__ = ["CSP", "HttpGuard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class HttpGuard:
    def __init__(self, app: App, max_body_bytes: int, hsts: bool = False) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes
        self.headers = [*_HEADERS, _HSTS] if hsts else list(_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(send)
            return
        cacheable = str(scope.get("path", "")).startswith("/static/")
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:  # a chunked body that grows past the limit
                raise HTTPException(413, f"the request body is over {self.max_body_bytes} bytes")
            return message

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _OURS]
                headers += self.headers
                if not cacheable and not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, limited, guarded)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps(
            {"error": {"field": "body", "reason": f"larger than {self.max_body_bytes} bytes (or a bad Content-Length)"}}
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers + self.headers})
        await send({"type": "http.response.body", "body": body})


_OURS = {name for name, _ in (*_HEADERS, _HSTS)}
