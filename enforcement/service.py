"""The decision HTTP service, for proxies not written in Python.

Starlette on uvicorn (uvloop + httptools): the thinnest ASGI stack that is
well kept. Request bodies are decoded and validated with msgspec, so a
decision costs one JSON decode, one ``EVALSHA`` and one JSON encode; there is
no per-request model layer as in FastAPI. The OpenAPI document is
:data:`OPENAPI`, served at ``/openapi.json``.

Every ``/v1`` route needs ``Authorization: Bearer <key>`` with one of the
proxy API keys (``SPENDSTREAM_DECISION__API_KEYS``, comma-separated).
A denial is a normal answer (200, ``"allowed": false``); 400 names the bad
field; 401 is a missing or wrong key; 503 is Redis unavailable for a settle
or release.
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from enforcement.client import AsyncCapClient, CapUnavailableError
from enforcement.estimator import Estimator
from enforcement.keys import Subject, SubjectError
from schemas.events import ID_PATTERN, NAME_PATTERN

__all__ = ["OPENAPI", "create_app"]

_ID = re.compile(ID_PATTERN)
_NAME = re.compile(NAME_PATTERN)
Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
Nanos = Annotated[int, msgspec.Meta(ge=0)]
Tokens = Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]


class _SubjectBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    org_id: Id
    user_id: Id
    department_id: Id | None = None
    feature: Id | None = None
    model: Name | None = None
    provider: Name | None = None
    api_key_id: Id | None = None

    def subject(self) -> Subject:
        return Subject(
            self.org_id, self.user_id, self.department_id, self.feature, self.model, self.provider, self.api_key_id
        )


class ReserveBody(_SubjectBody, kw_only=True):
    request_id: Id
    estimate_nanos: Nanos | None = None
    prompt_tokens: Tokens | None = None
    max_tokens: Tokens | None = None


class SettleBody(_SubjectBody, kw_only=True):
    event_id: Id
    cost_nanos: Nanos
    request_id: Id | None = None
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class ReleaseBody(msgspec.Struct, forbid_unknown_fields=True):
    org_id: Id
    request_id: Id


def _error(status: int, field: str, reason: str) -> JSONResponse:
    return JSONResponse({"error": {"field": field, "reason": reason}}, status_code=status)


def _bad_body(exc: msgspec.DecodeError) -> JSONResponse:
    message = str(exc)
    field = message.rsplit("`", 2)[-2] if message.endswith("`") else "$"
    return _error(400, field, message)


def create_app(  # noqa: PLR0915 - one closure per route
    client: AsyncCapClient, api_keys: list[str], estimator: Estimator | None = None
) -> Starlette:
    if not api_keys:
        raise ValueError("the decision service needs at least one proxy API key")
    keys = [k.encode() for k in api_keys]
    reserve_decoder = msgspec.json.Decoder(ReserveBody)
    settle_decoder = msgspec.json.Decoder(SettleBody)
    release_decoder = msgspec.json.Decoder(ReleaseBody)

    def authorised(request: Request) -> bool:
        given = request.headers.get("authorization", "")
        if not given.startswith("Bearer "):
            return False
        token = given[7:].encode()
        return any(hmac.compare_digest(token, key) for key in keys)

    async def reserve(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "authorization", "a valid Bearer proxy API key is required")
        try:
            body = reserve_decoder.decode(await request.body())
            subject = body.subject()
        except msgspec.DecodeError as exc:
            return _bad_body(exc)
        except SubjectError as exc:
            return _error(400, exc.field, exc.reason)
        estimate = body.estimate_nanos
        if estimate is None:
            if estimator is None or body.prompt_tokens is None or not body.model or not body.provider:
                return _error(
                    400,
                    "estimate_nanos",
                    "required unless prompt_tokens, model and provider are given for the estimator",
                )
            estimate = estimator.estimate(
                body.provider,
                body.model,
                body.feature or "",
                body.prompt_tokens,
                body.max_tokens,
                datetime.now(UTC),
                body.org_id,
            )
        try:
            decision = await client.reserve(subject, body.request_id, estimate)
        except SubjectError as exc:
            return _error(400, exc.field, exc.reason)
        return JSONResponse(decision.to_dict())

    async def settle(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "authorization", "a valid Bearer proxy API key is required")
        try:
            body = settle_decoder.decode(await request.body())
            result = await client.settle(
                body.subject(), body.event_id, body.cost_nanos, request_id=body.request_id, occurred_at=body.occurred_at
            )
        except msgspec.DecodeError as exc:
            return _bad_body(exc)
        except SubjectError as exc:
            return _error(400, exc.field, exc.reason)
        except CapUnavailableError as exc:
            return _error(503, "redis", str(exc))
        return JSONResponse(
            {
                "applied": result.applied,
                "duplicate": result.duplicate,
                "released_reservation": result.released_reservation,
                "crossings": [
                    {
                        "scope": c.scope,
                        "period": c.period,
                        "stage": c.stage,
                        "limit_nanos": c.limit,
                        "spent_nanos": c.spent,
                    }
                    for c in result.crossings
                ],
            }
        )

    async def release(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "authorization", "a valid Bearer proxy API key is required")
        try:
            body = release_decoder.decode(await request.body())
            released = await client.release(body.org_id, body.request_id)
        except msgspec.DecodeError as exc:
            return _bad_body(exc)
        except SubjectError as exc:
            return _error(400, exc.field, exc.reason)
        except CapUnavailableError as exc:
            return _error(503, "redis", str(exc))
        return JSONResponse({"released": released})

    async def spend(request: Request) -> Response:  # noqa: PLR0911 - one answer per way it can fail
        if not authorised(request):
            return _error(401, "authorization", "a valid Bearer proxy API key is required")
        scope = request.path_params["scope"]
        scope_id = request.path_params["scope_id"]
        org_id = request.query_params.get("org_id") or (scope_id if scope == "org" else None)
        if scope not in ("org", "department", "user", "feature", "model", "provider", "apikey"):
            return _error(400, "scope", "one of org, department, user, feature, model, provider, apikey")
        if not org_id:
            return _error(400, "org_id", "required as a query parameter for this scope")
        if not _ID.fullmatch(org_id):
            return _error(400, "org_id", "must be 1-128 of A-Z a-z 0-9 _ . @ + -")
        if not (_NAME if scope in ("model", "provider") else _ID).fullmatch(scope_id):
            return _error(400, "id", f"not a valid {scope} id")
        try:
            spent = await client.spend(org_id, f"{scope}/{scope_id}")
        except CapUnavailableError as exc:
            return _error(503, "redis", str(exc))
        return JSONResponse({"org_id": org_id, "scope": scope, "id": scope_id, "nanos": spent})

    async def health(request: Request) -> Response:
        try:
            await client.redis.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
            return JSONResponse({"status": "unhealthy", "redis": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    return Starlette(
        routes=[
            Route("/v1/reserve", reserve, methods=["POST"]),
            Route("/v1/settle", settle, methods=["POST"]),
            Route("/v1/release", release, methods=["POST"]),
            Route("/v1/spend/{scope}/{scope_id:path}", spend, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ]
    )


_COMPONENTS: dict[str, Any] = msgspec.json.schema_components(
    [ReserveBody, SettleBody, ReleaseBody], ref_template="#/components/schemas/{name}"
)[1]
_COMPONENTS["Error"] = {
    "type": "object",
    "properties": {
        "error": {"type": "object", "properties": {"field": {"type": "string"}, "reason": {"type": "string"}}}
    },
}
_COMPONENTS["Decision"] = {
    "type": "object",
    "required": ["allowed", "outcome", "reason", "request_id", "estimate_nanos", "remaining_nanos"],
    "properties": {
        "allowed": {"type": "boolean"},
        "outcome": {"enum": ["allowed", "denied", "fail_open", "fail_closed"]},
        "reason": {"type": "string"},
        "request_id": {"type": "string"},
        "estimate_nanos": {"type": "integer"},
        "blocking": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {
                        "scope": {"type": "string"},
                        "period": {"type": "string"},
                        "limit_nanos": {"type": "integer"},
                        "spent_nanos": {"type": "integer"},
                        "reserved_nanos": {"type": "integer"},
                        "resets_at_ms": {"type": "integer"},
                    },
                },
            ]
        },
        "remaining_nanos": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}


def _json_op(summary: str, request: str | None, response: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"proxyKey": []}],
        "responses": {
            "200": {
                "description": "OK",
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{response}"} if response else {"type": "object"}
                    }
                },
            },
            "400": {
                "description": "a bad field",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "401": {"description": "missing or wrong proxy API key"},
        },
    }
    if request:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}},
        }
    return op


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "spendstream decision service", "version": "1"},
    "components": {
        "schemas": _COMPONENTS,
        "securitySchemes": {"proxyKey": {"type": "http", "scheme": "bearer"}},
    },
    "paths": {
        "/v1/reserve": {
            "post": _json_op("Admit a request against every hard cap and hold its estimate", "ReserveBody", "Decision")
        },
        "/v1/settle": {"post": _json_op("Record the actual cost once, replacing the reservation", "SettleBody", "")},
        "/v1/release": {"post": _json_op("Drop the reservation of a request that will not run", "ReleaseBody", "")},
        "/v1/spend/{scope}/{id}": {
            "get": {
                **_json_op("Committed and reserved nano-USD of one scope", None, ""),
                "parameters": [
                    {"name": "scope", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "org_id", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
            }
        },
        "/healthz": {
            "get": {
                "summary": "Redis reachable",
                "responses": {"200": {"description": "healthy"}, "503": {"description": "unhealthy"}},
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
    },
}
