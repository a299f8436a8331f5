"""The decision HTTP service, for proxies not written in Python.

Starlette on uvicorn (uvloop + httptools): the thinnest ASGI stack that is
well kept. Request bodies are decoded and validated with msgspec, so a
decision costs one JSON decode, one ``EVALSHA`` and one JSON encode; there is
no per-request model layer as in FastAPI. The OpenAPI document is
:data:`OPENAPI`, served at ``/openapi.json``.

Every ``/v1`` route needs ``Authorization: Bearer <key>`` with a proxy key of
the :class:`~enforcement.access.KeyRing`; each key acts for its own orgs and
rights only. A denial is a normal answer (200, ``"allowed": false``); 400
names the bad field; 401 is a missing or unknown key; 403 a key that may not
act for that org or do that; 503 is Redis (or, for usage, Kafka) unable to
answer.

``POST /v1/usage`` takes a UsageEvent (the same document producers send to
``usage.v1``) and publishes it to the usage topic; the stream worker settles
the reservation named by its ``request_id`` and counts the cost in Redis,
ClickHouse and the alerts, exactly once by ``event_id``. There is no direct
settle: every cost takes that one path.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from enforcement.access import ApiKey, KeyRing, Right
from enforcement.client import AsyncCapClient, CapUnavailableError
from enforcement.decision_schema import OPENAPI, SCOPES, Publish, ReleaseBody, ReserveBody, TagsOf
from enforcement.estimator import Estimator
from schemas.allocation_tags import split_tag_scope
from schemas.errors import SpendstreamError
from schemas.events import ID_PATTERN, NAME_PATTERN, EventError, decode_event, error_of

__all__ = ["OPENAPI", "Publish", "TagsOf", "create_app"]  # the schema is re-exported: it is served here

_ID = re.compile(ID_PATTERN)
_NAME = re.compile(NAME_PATTERN)
_ENCODE = msgspec.json.Encoder().encode


def _json(content: object, status_code: int = 200) -> Response:
    """A JSON answer, encoded by msgspec (a fifth of what the standard library's encoder takes)."""
    return Response(_ENCODE(content), status_code, media_type="application/json")


def _error(status: int, field: str, reason: str) -> Response:
    return _json({"error": {"field": field, "reason": reason}}, status)


class _RefusedError(Exception):
    """Ends a request with an error answer that names the field."""

    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.field, self.reason = status, field, reason


def _answers(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Every way a request can fail, answered alike: 400 names the field, 503 says what is down."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except _RefusedError as exc:
            return _error(exc.status, exc.field, exc.reason)
        except msgspec.DecodeError as exc:
            error = error_of(exc)
            return _error(400, error.field, error.reason)
        except SpendstreamError as exc:  # a subject, id or amount the caps cannot meter: its status says
            return _error(exc.status, exc.field, exc.reason)
        except CapUnavailableError as exc:
            return _error(503, "redis", str(exc))

    return run


def _authorised(keys: KeyRing, request: Request, org_id: str, right: Right) -> ApiKey:
    key = keys.authenticate(request.headers.get("authorization"))
    if key is None:
        raise _RefusedError(401, "authorization", "a valid Bearer proxy API key is required")
    if right not in key.rights:
        raise _RefusedError(403, "authorization", f"key {key.name} may not {right.value}")
    if not key.may(org_id, right):
        raise _RefusedError(403, "org_id", f"key {key.name} may not act for org {org_id}")
    return key


def _spend_target(request: Request) -> tuple[str, str, str]:
    """(org, scope kind, scope id) of a spend read."""
    scope = request.path_params["scope"]
    scope_id = request.path_params["scope_id"]
    org_id = request.query_params.get("org_id") or (scope_id if scope == "org" else None)
    if scope not in SCOPES:
        raise _RefusedError(400, "scope", "one of " + ", ".join(SCOPES))
    if not org_id:
        raise _RefusedError(400, "org_id", "required as a query parameter for this scope")
    if not _ID.fullmatch(org_id):
        raise _RefusedError(400, "org_id", "must be 1-128 of A-Z a-z 0-9 _ . @ + -")
    if scope == "tag":
        if split_tag_scope(scope_id) is None:
            raise _RefusedError(400, "id", "a tag scope's id is <tag>=<value> (project=apollo)")
    elif not (_NAME if scope in ("model", "provider") else _ID).fullmatch(scope_id):
        raise _RefusedError(400, "id", f"not a valid {scope} id")
    return org_id, scope, scope_id


def create_app(
    client: AsyncCapClient,
    keys: KeyRing,
    estimator: Estimator | None = None,
    publish: Publish | None = None,
    max_past_s: float = 86_400,
    max_future_s: float = 300,
    tags: TagsOf | None = None,
) -> Starlette:
    """The service. ``publish`` (``/v1/usage``) and ``estimator`` (reserve by tokens) are optional;
    a route that needs one that is missing answers 501. Usage events may be at most ``max_past_s``
    old and ``max_future_s`` ahead of this clock, so a caller cannot put cost into other periods. ``tags``
    keeps a reserve's declared tags (without it, a reserve's tags are not capped)."""
    reserve_decoder = msgspec.json.Decoder(ReserveBody)
    release_decoder = msgspec.json.Decoder(ReleaseBody)

    def estimate_of(body: ReserveBody) -> int | None:
        if body.estimate_nanos is not None:
            return body.estimate_nanos
        if body.prompt_tokens is None or not body.model or not body.provider:
            raise _RefusedError(
                400, "estimate_nanos", "required unless prompt_tokens, model and provider are given for the estimator"
            )
        if estimator is None:
            raise _RefusedError(501, "estimate_nanos", "this service has no price catalogue: send estimate_nanos")
        return estimator.estimate(
            body.provider,
            body.model,
            body.feature or "",
            body.prompt_tokens,
            body.max_tokens,
            datetime.now(UTC),
            body.org_id,
        )

    @_answers
    async def reserve(request: Request) -> Response:
        body = reserve_decoder.decode(await request.body())
        subject = body.subject(tags)
        _authorised(keys, request, body.org_id, Right.RESERVE)
        decision = await client.reserve(subject, body.request_id, estimate_of(body))
        return _json(decision.to_dict())

    @_answers
    async def usage(request: Request) -> Response:
        if keys.authenticate(request.headers.get("authorization")) is None:  # before reading what it sent
            raise _RefusedError(401, "authorization", "a valid Bearer proxy API key is required")
        event = decode_event(await request.body())
        if isinstance(event, EventError):
            raise _RefusedError(400, event.field, event.reason)
        _authorised(keys, request, event.org_id, Right.USAGE)
        now = datetime.now(UTC)
        if event.occurred_at < now - timedelta(seconds=max_past_s):
            raise _RefusedError(400, "$.occurred_at", f"more than {max_past_s:.0f} s in the past (the service's bound)")
        if event.occurred_at > now + timedelta(seconds=max_future_s):
            raise _RefusedError(
                400, "$.occurred_at", f"more than {max_future_s:.0f} s in the future (the service's bound)"
            )
        if publish is None:
            raise _RefusedError(501, "usage", "this service does not publish usage events")
        try:
            await publish(event)
        except Exception as exc:
            raise _RefusedError(503, "kafka", f"the event was not published: {exc}") from exc
        return _json({"accepted": True, "event_id": event.event_id}, 202)

    @_answers
    async def release(request: Request) -> Response:
        body = release_decoder.decode(await request.body())
        _authorised(keys, request, body.org_id, Right.RELEASE)
        return _json({"released": await client.release(body.org_id, body.request_id)})

    @_answers
    async def spend(request: Request) -> Response:
        if keys.authenticate(request.headers.get("authorization")) is None:
            raise _RefusedError(401, "authorization", "a valid Bearer proxy API key is required")
        org_id, scope, scope_id = _spend_target(request)
        _authorised(keys, request, org_id, Right.SPEND)
        spent = await client.spend(org_id, f"{scope}/{scope_id}")
        return _json({"org_id": org_id, "scope": scope, "id": scope_id, "nanos": spent})

    async def health(request: Request) -> Response:
        try:
            await client.redis.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
            return _json({"status": "unhealthy", "redis": str(exc)}, 503)
        return _json({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return _json(OPENAPI)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, "path", f"no such route: {request.url.path}")

    async def wrong_method(request: Request, exc: Exception) -> Response:
        return _error(405, "method", f"{request.method} is not allowed on {request.url.path}")

    return Starlette(
        exception_handlers={404: not_found, 405: wrong_method},
        routes=[
            Route("/v1/reserve", reserve, methods=["POST"]),
            Route("/v1/usage", usage, methods=["POST"]),
            Route("/v1/release", release, methods=["POST"]),
            Route("/v1/spend/{scope}/{scope_id:path}", spend, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
    )
