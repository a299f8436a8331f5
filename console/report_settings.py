"""What finance edits beside the reports (pure): saved report templates and the org's chargeback rule
(cost centres, how unallocated spend is shared, the journal's accounts), read from a page's form or an
API body, shown back, and versioned (an ETag that changes whenever the stored record does)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from schemas.cost_allocation import Chargeback, ChargebackError, parse_chargeback
from schemas.report_kinds import REPORT_KINDS, Coverage
from schemas.report_templates import FILTERS, ReportTemplate, TemplateError, parse_template, template_record_body

__all__ = [
    "chargeback_form_values",
    "chargeback_from_form",
    "chargeback_version",
    "chargeback_view",
    "parse_chargeback_input",
    "template_form_values",
    "template_from_form",
    "template_from_input",
    "template_version",
    "template_view",
]

CUSTOM = next(k.name for k in REPORT_KINDS if k.coverage is Coverage.RANGE)
_SETTABLE = ("kind", "formats", "recipients", "schedule", "timezone", "paused", "days", "filters")
_LIST = re.compile(r"[\s,;]+")


def template_version(template: ReportTemplate | None) -> str:
    if template is None:
        return '"absent"'
    return '"' + hashlib.sha256(template_record_body(template)).hexdigest()[:20] + '"'


def template_view(template: ReportTemplate, zone: str) -> dict[str, Any]:
    """A template as the API answers it (and takes it back); ``zone``: the org's, for its next run."""
    upcoming = template.next_run(datetime.now(ZoneInfo(template.timezone or zone))) if not template.paused else None
    return {
        "name": template.name,
        "kind": template.kind,
        "formats": list(template.formats),
        "recipients": list(template.recipients),
        "schedule": template.schedule,
        "timezone": template.timezone or None,
        "paused": template.paused,
        "days": template.days,
        "filters": dict(template.filters),
        "saved_at": template.saved_at.isoformat() if template.saved_at else None,
        "run_requested_at": template.run_requested_at.isoformat() if template.run_requested_at else None,
        "next_run": upcoming.isoformat() if upcoming else None,
        "version": template_version(template),
    }


def template_from_input(
    org_id: str, name: str, data: Mapping[str, Any], now: datetime, current: ReportTemplate | None
) -> ReportTemplate:
    """The template ``data`` describes (the API's fields), saved at ``now``; a run asked for and not yet
    made is kept."""
    unknown = set(data) - {*_SETTABLE, "name", "version", "saved_at", "next_run", "run_requested_at"}
    if unknown:
        raise TemplateError(sorted(unknown)[0], "unknown field")
    body = {k: data[k] for k in _SETTABLE if k in data and data[k] is not None}
    body["saved_at"] = now.isoformat()
    if current is not None and current.run_requested_at is not None:
        body["run_requested_at"] = current.run_requested_at.isoformat()
    return parse_template(org_id, name, body)


def template_from_form(form: Mapping[str, Any], formats: list[str]) -> dict[str, Any]:
    """The API's fields from the page's form: ``formats`` are its ticked boxes, recipients a list
    separated by commas or spaces, the custom report's filters its non-empty fields."""
    days = str(form.get("days") or "30").strip()
    return {
        "kind": str(form.get("kind") or ""),
        "formats": formats,
        "recipients": [r for r in _LIST.split(str(form.get("recipients") or "")) if r],
        "schedule": str(form.get("schedule") or "").strip() or None,
        "timezone": str(form.get("timezone") or "").strip() or None,
        "paused": form.get("paused") == "on",
        "days": int(days) if days.isdigit() and len(days) < 5 else days,
        "filters": {k: str(form[k]).strip() for k in form if _filter(k) and str(form.get(k) or "").strip()}
        if form.get("kind") == CUSTOM
        else {},  # the form always sends the custom report's grouping; another kind takes no filters
    }


def _filter(name: str) -> bool:
    """A field of the form that is a custom report's filter: a grouping, a narrowing or a label."""
    return name in FILTERS or name == "api_key" or name.startswith("tag:")


def template_form_values(view: Mapping[str, Any]) -> dict[str, Any]:
    """A template's view as the page's form shows it (the inverse of :func:`template_from_form`)."""
    return {
        **{k: v for k, v in view.items() if k not in ("filters", "recipients")},
        **view.get("filters", {}),
        "recipients": ", ".join(view.get("recipients", ())),
        "schedule": view.get("schedule") or "",
        "timezone": view.get("timezone") or "",
        "form": "template",
    }


def chargeback_form_values(view: Mapping[str, Any]) -> dict[str, Any]:
    """The chargeback rule's view as the page's form shows it (the inverse of :func:`chargeback_from_form`)."""
    rule = view.get("unallocated", "proportional")
    shares = rule if isinstance(rule, Mapping) else {}
    return {
        "by": view.get("by", "department"),
        "cost_centres": "\n".join(f"{k} = {v}" for k, v in view.get("cost_centres", {}).items()),
        "rule": "shares" if shares else "proportional",
        "shares": "\n".join(f"{k} = {v}" for k, v in shares.items()),
        "expense": view.get("accounts", {}).get("expense", ""),
        "accrual": view.get("accounts", {}).get("accrual", ""),
        "default_cost_centre": view.get("default_cost_centre", ""),
        "unallocated_cost_centre": view.get("unallocated_cost_centre", ""),
        "version": view.get("version", ""),
    }


def chargeback_version(chargeback: Chargeback | None) -> str:
    body = repr(sorted((chargeback or Chargeback()).body().items()))
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:20] + '"'


def chargeback_view(chargeback: Chargeback | None) -> dict[str, Any]:
    """The org's chargeback rule as the API answers it (and takes it back): the defaults when none is set."""
    return {**(chargeback or Chargeback()).body(), "version": chargeback_version(chargeback)}


def chargeback_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The API's fields from the page's form: cost centres and fixed shares one ``department = value`` a line."""
    shares = _pairs(str(form.get("shares") or ""), "unallocated")
    rule: Any = "proportional"
    if form.get("rule") == "shares":
        rule = {k: int(v) if v.isdigit() and len(v) < 4 else v for k, v in shares.items()}
    return {
        "by": str(form.get("by") or "department").strip(),
        "cost_centres": _pairs(str(form.get("cost_centres") or ""), "cost_centres"),
        "unallocated": rule,
        "accounts": {
            "expense": str(form.get("expense") or "").strip(),
            "accrual": str(form.get("accrual") or "").strip(),
        },
        "default_cost_centre": str(form.get("default_cost_centre") or "").strip(),
        "unallocated_cost_centre": str(form.get("unallocated_cost_centre") or "").strip(),
    }


def parse_chargeback_input(data: Mapping[str, Any]) -> Chargeback:
    body = {k: v for k, v in data.items() if k != "version"}
    return parse_chargeback(body, "chargeback")


def _pairs(text: str, field: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ChargebackError(field, f"line {number}: write 'department = value'")
        pairs[key.strip()] = value.strip()
    return pairs
