"""The pieces every path of the admin API's OpenAPI document is made of: error answers, a path
parameter, a JSON answer."""

from __future__ import annotations

from typing import Any

from schemas.errors import ERROR_BODY_SCHEMA

__all__ = ["errors", "ok", "path_param"]


def errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "a field is wrong (named in error.field)",
        401: "not signed in, or an unknown or revoked token",
        403: "the role may not do this, or the target is outside the principal's org or departments",
        404: "no such budget visible to the principal",
        409: "it exists already",
        412: "If-Match is not the current version: someone changed it meanwhile",
        413: "the request body is over the console's limit (console.max_body_bytes)",
        422: "a PUT that lacks fields it replaces (named in error.field)",
        428: "If-Match is required",
    }
    return {
        str(code): {"description": reasons[code], "content": {"application/json": {"schema": ERROR_BODY_SCHEMA}}}
        for code in codes
    }


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}
