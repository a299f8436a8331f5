"""The admin API's OpenAPI paths of the org's settings beside budgets and channels: saved report templates
and the chargeback rule (:mod:`console.report_api`), and the allocation tags (:mod:`console.tag_settings`)."""

from __future__ import annotations

from typing import Any

from console.openapi_parts import errors, ok, path_param
from schemas.report_kinds import KINDS, Format
from schemas.report_templates import NARROWING

__all__ = ["settings_paths", "sso_paths"]

_TEMPLATE = {
    "type": "object",
    "required": ["kind"],
    "properties": {
        "name": {"type": "string", "description": "lower-case letters, digits, '-' and '_'; the template's key"},
        "kind": {"enum": list(KINDS)},
        "formats": {"type": "array", "items": {"enum": [f.value for f in Format]}, "default": ["pdf"]},
        "recipients": {"type": "array", "items": {"type": "string", "format": "email"}, "maxItems": 20},
        "schedule": {
            "type": ["string", "null"],
            "description": "cron (minute hour day month weekday); none: on demand",
        },
        "timezone": {"type": ["string", "null"], "description": "the schedule's IANA zone; none: the org's"},
        "paused": {"type": "boolean", "description": "kept, but not run on its schedule"},
        "days": {"type": "integer", "minimum": 1, "maximum": 400, "description": "custom: the days up to yesterday"},
        "filters": {"type": "object", "description": "custom: group, granularity, " + ", ".join(NARROWING)},
        "saved_at": {"type": "string", "readOnly": True},
        "run_requested_at": {"type": ["string", "null"], "readOnly": True},
        "next_run": {"type": ["string", "null"], "readOnly": True},
        "version": {"type": "string", "readOnly": True, "description": "also sent as the ETag"},
    },
}
_CHARGEBACK = {
    "type": "object",
    "properties": {
        "cost_centres": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "department -> code",
        },
        "unallocated": {"description": "'proportional', or department -> whole percent, adding up to 100"},
        "accounts": {"type": "object", "properties": {"expense": {"type": "string"}, "accrual": {"type": "string"}}},
        "default_cost_centre": {"type": "string", "description": "of a department without a code of its own"},
        "unallocated_cost_centre": {"type": "string", "description": "of spend nobody can share"},
        "version": {"type": "string", "readOnly": True, "description": "also sent as the ETag"},
    },
}


_TAGS = {
    "type": "object",
    "properties": {
        "tags": {
            "type": "array",
            "maxItems": 8,
            "items": {"description": "a key (a-z 0-9 _), or {key: {values: [...], missing: value}}"},
        },
        "trust_request_tags": {"type": "boolean"},
        "version": {"type": "string", "readOnly": True},
    },
}


_RULE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "group": {"type": "string", "description": "a value of the ID token's groups claim"},
        "email_domain": {"type": "string", "description": "the domain of a verified email (instead of group)"},
        "role": {"enum": ["owner", "admin", "finance", "manager", "viewer"]},
        "departments": {"type": "array", "items": {"type": "string"}, "description": "a manager's"},
    },
}
_SSO = {
    "type": "object",
    "required": ["issuer", "client_id", "client_secret", "rules"],
    "properties": {
        "issuer": {"type": "string", "description": "the provider's issuer URL (https)"},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string", "description": "env:SPENDSTREAM_SECRET_<ORG>_<NAME>, a reference"},
        "scopes": {"type": "array", "items": {"type": "string"}, "default": ["openid", "email", "profile"]},
        "groups_claim": {"type": "string", "default": "groups"},
        "rules": {"type": "array", "items": _RULE, "description": "the first that matches gives the role"},
        "required": {"type": "boolean", "description": "refuse passwords but the break-glass owners'"},
        "break_glass": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        "session_minutes": {"type": "integer", "minimum": 5, "maximum": 1440, "default": 480},
    },
}


def sso_paths() -> dict[str, Any]:
    """The org's single sign-on settings (owners)."""
    answer = {"type": "object", "properties": {"sso": {"oneOf": [_SSO, {"type": "null"}]}}}
    return {
        "/api/v1/sso": {
            "get": {
                "summary": "the org's single sign-on settings (owners); null when it has none",
                "responses": {"200": ok("the settings", answer), **errors(401, 403)},
            },
            "put": {
                "summary": "set the org's OpenID Connect provider and the rules mapping its groups to roles",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _SSO}}},
                "responses": {"200": ok("the settings", answer), **errors(400, 401, 403)},
            },
            "delete": {
                "summary": "remove single sign-on: users of the provider can no longer sign in",
                "responses": {"200": ok("null settings", answer), **errors(401, 403)},
            },
        }
    }


def settings_paths(if_match: dict[str, Any]) -> dict[str, Any]:
    """Saved report templates and the chargeback rule (owners, admins and finance)."""
    body = {"required": True, "content": {"application/json": {"schema": _TEMPLATE}}}
    name = path_param("name")
    return {
        "/api/v1/reports/templates": {
            "get": {
                "summary": "the org's saved report templates",
                "responses": {"200": ok("templates", {"type": "object"}), **errors(401, 403)},
            },
            "post": {
                "summary": "save a new template (409 if its name is taken)",
                "requestBody": body,
                "responses": {"201": ok("the template", _TEMPLATE), **errors(400, 401, 403, 409)},
            },
        },
        "/api/v1/reports/templates/{name}": {
            "get": {
                "summary": "one template",
                "parameters": [name],
                "responses": {"200": ok("the template", _TEMPLATE), **errors(401, 403, 404)},
            },
            "put": {
                "summary": "replace a template (pause it with paused: true); If-Match: the version read",
                "parameters": [name, if_match],
                "requestBody": body,
                "responses": {"200": ok("the template", _TEMPLATE), **errors(400, 401, 403, 412, 428)},
            },
            "delete": {
                "summary": "delete a template; If-Match: the version read",
                "parameters": [name, if_match],
                "responses": {"204": {"description": "deleted"}, **errors(401, 403, 404, 412, 428)},
            },
        },
        "/api/v1/reports/templates/{name}/run": {
            "post": {
                "summary": "ask the report scheduler for one run now (paused or not); it emails the files",
                "parameters": [name],
                "responses": {"202": ok("the template", _TEMPLATE), **errors(401, 403, 404)},
            }
        },
        "/api/v1/tags": {
            "get": {
                "summary": "the org's allocation tags (metadata keys its spend is grouped and charged by)",
                "responses": {"200": ok("the tags", _TAGS), **errors(401, 403)},
            },
            "put": {
                "summary": "replace the allocation tags (owners and admins); If-Match: the version read",
                "parameters": [if_match],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _TAGS}}},
                "responses": {"200": ok("the tags", _TAGS), **errors(400, 401, 403, 412, 428)},
            },
        },
        "/api/v1/chargeback": {
            "get": {
                "summary": "the org's chargeback rule: cost centres, unallocated spend, the journal's accounts",
                "responses": {"200": ok("the rule", _CHARGEBACK), **errors(401, 403)},
            },
            "put": {
                "summary": "replace the chargeback rule; If-Match: the version read",
                "parameters": [if_match],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _CHARGEBACK}}},
                "responses": {"200": ok("the rule", _CHARGEBACK), **errors(400, 401, 403, 412, 428)},
            },
        },
    }
