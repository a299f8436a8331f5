"""The decision service's request bodies (validated by msgspec against the same patterns as
:class:`~enforcement.subject.Subject`) and its OpenAPI document, served at ``/openapi.json``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec

from enforcement.decision import Outcome
from enforcement.subject import Subject
from schemas.allocation_tags import MAX_TAGS, TAG_KEY_PATTERN
from schemas.budgets import ScopeKind
from schemas.errors import ERROR_BODY_SCHEMA
from schemas.events import ID_PATTERN, NAME_PATTERN, UsageEvent

__all__ = ["OPENAPI", "SCOPES", "Publish", "ReleaseBody", "ReserveBody", "TagsOf"]

Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
Nanos = Annotated[int, msgspec.Meta(ge=0)]
Tokens = Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
TagKey = Annotated[str, msgspec.Meta(pattern=TAG_KEY_PATTERN)]
Publish = Callable[[UsageEvent], Awaitable[None]]
"""Sends a validated UsageEvent to the usage topic; returns once the broker has it."""
TagsOf = Callable[[str, dict[str, str]], tuple[tuple[str, str], ...]]
"""An org's declared tags' (tag, value) pairs for caps, from the tags a reserve names."""
SCOPES = tuple(kind.value for kind in ScopeKind)


class _SubjectBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    org_id: Id
    user_id: Id
    department_id: Id | None = None
    feature: Id | None = None
    model: Name | None = None
    provider: Name | None = None
    api_key_id: Id | None = None
    tags: Annotated[dict[TagKey, Id], msgspec.Meta(max_length=MAX_TAGS)] | None = None
    """The request's allocation tag values (``{"project": "apollo"}``), as its usage event's metadata will
    carry them; the service keeps the org's declared tags only, as the worker does when it counts."""

    def subject(self, tags: TagsOf | None = None) -> Subject:
        # msgspec checked every field against the same patterns as Subject does
        pairs = tags(self.org_id, self.tags or {}) if tags is not None else ()
        return Subject.unchecked(
            self.org_id,
            self.user_id,
            self.department_id,
            self.feature,
            self.model,
            self.provider,
            self.api_key_id,
            pairs,
        )


class ReserveBody(_SubjectBody, kw_only=True):
    request_id: Id
    estimate_nanos: Nanos | None = None
    prompt_tokens: Tokens | None = None
    max_tokens: Tokens | None = None


class ReleaseBody(msgspec.Struct, forbid_unknown_fields=True):
    org_id: Id
    request_id: Id


_COMPONENTS: dict[str, Any] = msgspec.json.schema_components(
    [ReserveBody, ReleaseBody, UsageEvent], ref_template="#/components/schemas/{name}"
)[1]
_COMPONENTS["Error"] = ERROR_BODY_SCHEMA
_BUDGET_STATE = {
    "type": "object",
    "properties": {
        "scope": {"type": "string"},
        "period": {"type": "string"},
        "limit_nanos": {"type": "integer"},
        "spent_nanos": {"type": "integer"},
        "reserved_nanos": {"type": "integer"},
        "resets_at_ms": {"type": "integer"},
    },
}
_COMPONENTS["Decision"] = {
    "type": "object",
    "required": ["allowed", "outcome", "reason", "request_id", "estimate_nanos", "remaining_nanos"],
    "properties": {
        "allowed": {"type": "boolean"},
        "outcome": {"enum": [o.value for o in Outcome]},
        "reason": {"type": "string"},
        "request_id": {"type": "string"},
        "estimate_nanos": {"type": "integer"},
        "blocking": {"anyOf": [{"type": "null"}, _BUDGET_STATE]},
        "remaining_nanos": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}
_COMPONENTS["Accepted"] = {
    "type": "object",
    "required": ["accepted", "event_id"],
    "properties": {"accepted": {"type": "boolean"}, "event_id": {"type": "string"}},
}
_COMPONENTS["Released"] = {
    "type": "object",
    "required": ["released"],
    "properties": {"released": {"type": "boolean"}},
}
_COMPONENTS["Spend"] = {
    "type": "object",
    "required": ["org_id", "scope", "id", "nanos"],
    "properties": {
        "org_id": {"type": "string"},
        "scope": {"type": "string"},
        "id": {"type": "string"},
        "nanos": {
            "type": "object",
            "properties": {k: {"type": "integer"} for k in ("daily", "weekly", "monthly", "reserved")},
        },
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json_op(summary: str, request: str | None, response: str, status: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"proxyKey": []}],
        "responses": {
            status: {
                "description": "OK" if status == "200" else "Accepted",
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{response}"}}},
            },
            "400": _error_response("a bad field, named in the answer"),
            "401": _error_response("missing or unknown proxy API key"),
            "403": _error_response("the key may not act for that org, or may not do this"),
            "503": _error_response("Redis (or, for usage, Kafka) could not answer; retry"),
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
    "info": {"title": "spendstream decision service", "version": "2"},
    "components": {
        "schemas": _COMPONENTS,
        "securitySchemes": {"proxyKey": {"type": "http", "scheme": "bearer"}},
    },
    "paths": {
        "/v1/reserve": {
            "post": _json_op("Admit a request against every hard cap and hold its estimate", "ReserveBody", "Decision")
        },
        "/v1/usage": {
            "post": _json_op(
                "Publish a request's UsageEvent: the stream settles its reservation and counts the cost once",
                "UsageEvent",
                "Accepted",
                "202",
            )
        },
        "/v1/release": {
            "post": _json_op("Drop the reservation of a request that will not run", "ReleaseBody", "Released")
        },
        "/v1/spend/{scope}/{id}": {
            "get": {
                **_json_op("Committed and reserved nano-USD of one scope", None, "Spend"),
                "parameters": [
                    {"name": "scope", "in": "path", "required": True, "schema": {"enum": list(SCOPES)}},
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
