"""The admin API's OpenAPI 3.1 document (``GET /api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

from console.openapi_parts import errors, ok, path_param
from console.openapi_reports import settings_paths, sso_paths
from schemas.budgets import ScopeKind
from schemas.report_kinds import KINDS, REPORT_KINDS, Format
from schemas.report_templates import NARROWING

__all__ = ["openapi_document"]

_BUDGET = {
    "type": "object",
    "required": ["scope", "id", "period", "limit"],
    "properties": {
        "scope": {"enum": [kind.value for kind in ScopeKind]},
        "id": {"type": "string", "description": "the scope's id (an org budget: the org's own id)"},
        "period": {"enum": ["daily", "weekly", "monthly"]},
        "limit": {"type": "string", "description": "USD as a decimal string, such as '250.00'"},
        "mode": {"enum": ["soft", "hard"], "default": "soft"},
        "stages": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 1000}},
        "alerts": {
            "type": "object",
            "description": "stage ('80'), cap_denied or projected_exceed -> channel names of the org",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "key": {"type": "string", "readOnly": True},
        "limit_nanos": {"type": "integer", "readOnly": True},
        "version": {"type": "string", "readOnly": True, "description": "also sent as the ETag"},
    },
}

_CHANNEL = {
    "type": "object",
    "required": ["type", "recipients"],
    "properties": {
        "type": {"enum": ["email", "slack", "teams", "sms", "pagerduty"]},
        "recipients": {"description": "addresses or E.164 numbers (a list or comma-separated); a URL or key"},
        "rate_per_minute": {"type": "integer", "minimum": 1, "maximum": 10000},
    },
}
GROUP = {
    "type": "string",
    "pattern": "^(provider|model|feature|department|user|api_key|tag:[a-z][a-z0-9_]{0,31})$",
    "description": "a column, api_key, or tag:<key> of a tag the org declared; narrow with tag:<key>=<value>",
}
_FILTERS = [
    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}},
    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"}},
    {"name": "granularity", "in": "query", "schema": {"enum": ["day", "week", "month"]}},
    {"name": "group", "in": "query", "schema": GROUP},
    *({"name": name, "in": "query", "schema": {"type": "string"}} for name in NARROWING),
    {"name": "api_key", "in": "query", "schema": {"type": "string"}, "description": "only this API key's spend"},
]
"""Besides these, ``tag:<key>=<value>`` narrows to one value of a declared tag (one API key or tag value at once)."""


def openapi_document() -> dict[str, Any]:
    page = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": _BUDGET}, "next_cursor": {"type": ["string", "null"]}},
    }
    key = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}, "example": "user/u1/monthly"}
    if_match = {"name": "If-Match", "in": "header", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "spendstream admin API",
            "version": "1",
            "description": "Everything the console shows and changes. The org is the signed-in user's or the "
            "token's, never the request's. Send a token as 'Authorization: Bearer ssc_...'.",
        },
        "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "security": [{"token": []}],
        "paths": {
            "/api/v1/me": {
                "get": {
                    "summary": "who the token or session is",
                    "responses": {"200": ok("the principal", {"type": "object"}), **errors(401)},
                }
            },
            "/api/v1/overview": {
                "get": {
                    "summary": "Admin > Billing: month to date, budgets, forecast, tokens by model, cost drivers",
                    "parameters": [{"name": "department", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": ok("the overview", {"type": "object"}), **errors(401, 403)},
                }
            },
            "/api/v1/budgets": {
                "get": {
                    "summary": "the budgets the principal sees, by key, cursor-paginated",
                    "parameters": [
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    ],
                    "responses": {"200": ok("a page of budgets", page), **errors(400, 401)},
                },
                "post": {
                    "summary": "create a budget (published to config.v1, enforced within seconds)",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _BUDGET}}},
                    "responses": {"201": ok("the budget", _BUDGET), **errors(400, 401, 403, 409)},
                },
            },
            "/api/v1/budgets/{key}": {
                "get": {
                    "summary": "one budget, with its version as the ETag",
                    "parameters": [key],
                    "responses": {"200": ok("the budget", _BUDGET), **errors(401, 404)},
                },
                "put": {
                    "summary": "replace a budget: every one of limit, mode, stages and alerts is sent (422 names "
                    "the missing ones); a change that weakens enforcement is audited as budget.weaken",
                    "parameters": [key, if_match],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _BUDGET}}},
                    "responses": {"200": ok("the budget", _BUDGET), **errors(400, 401, 403, 404, 412, 422, 428)},
                },
                "patch": {
                    "summary": "change some of a budget's limit, mode, stages or alerts; the rest is kept",
                    "parameters": [key, if_match],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _BUDGET}}},
                    "responses": {"200": ok("the budget", _BUDGET), **errors(400, 401, 403, 404, 412, 428)},
                },
                "delete": {
                    "summary": "delete a budget",
                    "parameters": [key, if_match],
                    "responses": {"204": {"description": "deleted"}, **errors(401, 403, 404, 412, 428)},
                },
            },
            "/api/v1/budgets/preview": {
                "post": {
                    "summary": "what a budget would have done over the last 30 days (stages fired, requests denied)",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _BUDGET}}},
                    "responses": {"200": ok("per period", {"type": "object"}), **errors(400, 401, 403)},
                }
            },
            "/api/v1/costs": {
                "get": {
                    "summary": "cost analysis: by group (provider, model, feature, department, user) and per period",
                    "parameters": _FILTERS,
                    "responses": {"200": ok("rows and series", {"type": "object"}), **errors(400, 401, 403)},
                }
            },
            "/api/v1/patterns": {
                "get": {
                    "summary": "peak hours, weekday profile, weekly trend, feature adoption, spikes",
                    "parameters": _FILTERS,
                    "responses": {"200": ok("patterns", {"type": "object"}), **errors(400, 401, 403)},
                }
            },
            "/api/v1/forecasts": {
                "get": {
                    "summary": "every visible scope's latest end-of-period projection",
                    "responses": {"200": ok("projections", {"type": "object"}), **errors(401)},
                }
            },
            "/api/v1/channels": {
                "get": {
                    "summary": "the org's alert channels (secrets never shown) and routing",
                    "responses": {"200": ok("channels", {"type": "object"}), **errors(401)},
                }
            },
            "/api/v1/channels/{name}": {
                "put": {
                    "summary": "create or replace an alert channel: type, recipients (a webhook or key as env:NAME)",
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _CHANNEL}}},
                    "responses": {"200": ok("the channel", {"type": "object"}), **errors(400, 401, 403)},
                },
                "delete": {
                    "summary": "delete an alert channel no budget or routing uses",
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"204": {"description": "deleted"}, **errors(401, 403, 404, 409)},
                },
            },
            "/api/v1/routing": {
                "put": {
                    "summary": "where alerts go that their budget does not route: default and per kind",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"200": ok("the routing", {"type": "object"}), **errors(400, 401, 403)},
                }
            },
            "/api/v1/reports": {
                "post": {
                    "summary": "generate a report, as PDF, XLSX or CSV (zip): "
                    + "; ".join(f"{k.name}: {k.title.lower()}" for k in REPORT_KINDS),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "kind": {"enum": list(KINDS)},
                                        "month": {"type": "string", "description": "a month kind: YYYY-MM"},
                                        "format": {"enum": [f.value for f in Format]},
                                        "from": {"type": "string", "description": "custom: the first day, YYYY-MM-DD"},
                                        "to": {"type": "string", "description": "custom: the last day, included"},
                                        "group": GROUP,
                                        "granularity": {"enum": ["day", "week", "month"]},
                                        **{
                                            name: {"type": "string", "description": f"custom: only this {name}"}
                                            for name in NARROWING
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"200": {"description": "the file"}, **errors(400, 401, 403)},
                }
            },
            "/api/v1/reports/runs": {
                "get": {
                    "summary": "scheduled report runs of the org, newest first: outcome, period and file links",
                    "responses": {"200": ok("runs", {"type": "object"}), **errors(401, 403)},
                }
            },
            "/api/v1/reports/runs/{run_id}/files/{name}": {
                "get": {
                    "summary": "a file a run made, again (PDF, XLSX or CSV)",
                    "parameters": [path_param("run_id"), path_param("name")],
                    "responses": {"200": {"description": "the file"}, **errors(401, 403, 404)},
                }
            },
            "/api/v1/export/focus": {
                "get": {
                    "summary": "the org's charges as FOCUS rows (1.2, or 1.0), a row per token type of each usage "
                    "event, in the export's order, a page of whole events a call (limit counts events): start "
                    "without a cursor, then pass each X-Next-Cursor; every row comes exactly once, late ones "
                    "included (events stored less than export_settle_s ago wait for the next page)",
                    "parameters": [
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                        {"name": "format", "in": "query", "schema": {"enum": ["csv", "jsonl"]}},
                        {"name": "focus_version", "in": "query", "schema": {"enum": ["1.2", "1.0"]}},
                    ],
                    "responses": {
                        "200": {
                            "description": "the rows (CSV with a header, or JSON lines); X-Next-Cursor: where the "
                            "next page starts; X-Row-Count and X-Event-Count: the rows and events in this one",
                        },
                        **errors(400, 401, 403),
                    },
                }
            },
            "/api/v1/export/closes": {
                "get": {
                    "summary": "the org's closed months",
                    "responses": {"200": ok("closed months", {"type": "object"}), **errors(401, 403)},
                },
                "post": {
                    "summary": "close a month that has ended at a cursor (default: everything stored so far): its rows "
                    "after the cursor come as corrections (ChargeClass Correction) billed to a later open month",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["month"],
                                    "properties": {
                                        "month": {"type": "string", "description": "YYYY-MM"},
                                        "cursor": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"201": ok("the close", {"type": "object"}), **errors(400, 401, 403, 409)},
                },
            },
            **settings_paths(if_match),
            **sso_paths(),
            "/api/v1/alerts": {
                "get": {
                    "summary": "alert deliveries of the last 31 days, newest first",
                    "responses": {"200": ok("deliveries", {"type": "object"}), **errors(401, 403)},
                }
            },
            "/api/v1/audit": {
                "get": {
                    "summary": "who changed what (owners), newest first, cursor-paginated",
                    "parameters": [{"name": "cursor", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": ok("audit entries", {"type": "object"}), **errors(400, 401, 403)},
                }
            },
        },
    }
