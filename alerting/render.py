"""What an alert says, per channel. Pure: builds payloads, sends nothing.

Every channel says the same short, exact things: what happened, spent against
the limit with the percentage, the projected month-end with its interval when
a forecast exists, the top cost drivers, and a link to the console page that shows it.
Payload shapes follow each provider's documentation: Slack Block Kit, a Teams
Adaptive Card in a message attachment (Workflows and connector webhooks both
take it), PagerDuty Events API v2, and a plain-text-plus-HTML email.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

from schemas.alerts import (
    DRIVER_KEYS,
    Alert,
    BudgetStage,
    CapDenied,
    ProjectedExceed,
    Resolved,
    Severity,
    Spike,
    UnconfiguredOrg,
    Unpriced,
    severity_of,
    spike_comparison,
)
from schemas.money import format_usd

__all__ = [
    "AlertView",
    "email_message",
    "pagerduty_resolve",
    "pagerduty_trigger",
    "slack_payload",
    "sms_text",
    "teams_payload",
    "view_of",
]


@dataclass(frozen=True, slots=True)
class AlertView:
    title: str
    facts: tuple[tuple[str, str], ...]  # (label, value), in order
    drivers: tuple[str, ...]
    link: str
    severity: Severity

    def text(self) -> str:
        lines = [self.title, *(f"{label}: {value}" for label, value in self.facts)]
        if self.drivers:
            lines.append("Top cost drivers: " + "; ".join(self.drivers))
        lines.append(self.link)
        return "\n".join(lines)


def _usd(nanos: int | None) -> str:
    return "n/a" if nanos is None else format_usd(nanos, places=2)


def _scope_label(alert: Alert) -> str:
    kind, _, ident = alert.scope.partition("/")
    return f"{kind} {ident}" if kind != "org" else f"org {alert.org_id}"


def _driver(driver: dict[str, Any]) -> str:
    parts = [str(driver[k]) for k in DRIVER_KEYS if driver.get(k)]
    cost = driver.get("cost_nanos")
    share = driver.get("share")
    tail = f" {_usd(int(cost))}" if isinstance(cost, int) else ""
    if isinstance(share, int | float):
        tail += f" ({share * 100:.0f}%)"
    return " / ".join(parts) + tail


_TITLES = {  # what happened, after "<org>: "
    CapDenied: "{scope} hit its hard cap; requests are being denied",
    ProjectedExceed: "{scope} is projected to exceed its budget",
    Spike: "usage spike on {scope}",
    Unpriced: "{scope} has no price; its spend is not counted in full",
    UnconfiguredOrg: "spend of an org no one configured is counted; no budget applies",
}


def _title(alert: Alert, scope: str) -> str:
    if isinstance(alert, BudgetStage):
        return f"{alert.org_id}: {scope} reached {alert.stage}% of its {alert.period or ''} budget".replace("  ", " ")
    title = _TITLES.get(type(alert))
    if title is not None:
        return f"{alert.org_id}: " + title.format(scope=scope)
    return f"{alert.org_id}: resolved: {scope}" + (f" ({alert.reason})" if alert.reason else "")


def _spent(alert: BudgetStage | CapDenied | ProjectedExceed) -> list[tuple[str, str]]:
    if alert.spent_nanos is not None and alert.limit_nanos:
        percent = alert.spent_nanos * 100 / alert.limit_nanos
        return [("Spent", f"{_usd(alert.spent_nanos)} of {_usd(alert.limit_nanos)} ({percent:.1f}%)")]
    if alert.spent_nanos is not None:
        return [("Spent", _usd(alert.spent_nanos))]
    return []


def _projection(alert: ProjectedExceed) -> list[tuple[str, str]]:
    interval = f" (P10 {_usd(alert.projected_p10_nanos)} to P90 {_usd(alert.projected_p90_nanos)})"
    facts = [
        ("Projected period end", _usd(alert.projected_p50_nanos) + interval),
        ("Chance of exceeding", f"{alert.probability * 100:.0f}%"),
    ]
    if alert.runout_date:
        facts.append(("Budget runs out", alert.runout_date))
    return facts


def _facts(alert: Alert) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []
    period = f"{alert.period} {alert.period_key}" if alert.period and alert.period_key else (alert.period_key or "")
    if period:
        facts.append(("Period", period))
    if isinstance(alert, BudgetStage | CapDenied | ProjectedExceed):
        facts.extend(_spent(alert))
    if isinstance(alert, ProjectedExceed):
        facts.extend(_projection(alert))
    if isinstance(alert, Spike):
        facts.append(("In the bucket", spike_comparison(alert.observed_nanos, alert.expected_nanos)))
    if isinstance(alert, CapDenied) and alert.reason:
        facts.append(("Denied", alert.reason))
    if isinstance(alert, Unpriced) and alert.reason:
        facts.append(("Why", alert.reason + "; add its price with spendstream prices import"))
    if isinstance(alert, UnconfiguredOrg) and alert.reason:
        facts.append(("Why", alert.reason))
    return facts


_NEXT_LEVEL = {"org": "department", "department": "user", "user": "model", "model": "user", "feature": "user",
               "provider": "model"}  # fmt: skip


def _period_days(alert: Alert) -> tuple[date, date] | None:
    """The first and last day of the alert's period (its key is in the org's time zone); a spike's day."""
    key, period = alert.period_key or "", alert.period or ""
    try:
        if period == "monthly":
            first = datetime.strptime(key, "%Y-%m").date()
            return first, (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        if period == "weekly":
            year, week = key.split("-W")
            monday = date.fromisocalendar(int(year), int(week), 1)
            return monday, monday + timedelta(days=6)
        if period == "daily":
            day = date.fromisoformat(key)
            return day, day
        if key:  # a spike: its bucket's start
            day = datetime.fromisoformat(key).date()
            return day, day
    except ValueError:
        return None
    return None


def console_link(alert: Alert, console_url: str) -> str:
    """Where the console shows what the alert is about: Cost analysis filtered to its scope and period,
    grouped one level down (a department by user, a user by model); Budget Settings for what has no cost
    filter (an API key's budget, a resolved condition); the overview for an org no one configured."""
    base = console_url.rstrip("/")
    kind, _, ident = alert.scope.partition("/")
    days = _period_days(alert)
    if isinstance(alert, UnconfiguredOrg):
        return f"{base}/billing"
    if isinstance(alert, Resolved) or kind not in _NEXT_LEVEL or days is None:
        return f"{base}/billing/budgets"
    query = {"from": days[0].isoformat(), "to": days[1].isoformat(), "group": _NEXT_LEVEL[kind]}
    if kind != "org":
        query[kind] = ident
    return f"{base}/billing/costs?{urlencode(query)}"


def view_of(alert: Alert, console_url: str) -> AlertView:
    link = console_link(alert, console_url)
    drivers = tuple(_driver(d) for d in alert.drivers[:3])
    return AlertView(_title(alert, _scope_label(alert)), tuple(_facts(alert)), drivers, link, severity_of(alert))


def slack_payload(view: AlertView) -> dict[str, Any]:
    """Incoming-webhook message: ``text`` is the notification fallback, ``blocks`` the layout."""
    fields = [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in view.facts]
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": view.title[:150]}}]
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})
    if view.drivers:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Top cost drivers*\n" + "\n".join(view.drivers)}}
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open in the console"}, "url": view.link}
            ],
        }
    )
    return {"text": view.title, "blocks": blocks}


def teams_payload(view: AlertView) -> dict[str, Any]:
    """A message with one Adaptive Card attachment, as Teams Workflows and connector webhooks take it."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": view.title, "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in view.facts]},
    ]
    if view.drivers:
        body.append({"type": "TextBlock", "text": "Top cost drivers: " + "; ".join(view.drivers), "wrap": True})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": "Open in the console", "url": view.link}],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def pagerduty_trigger(view: AlertView, alert: Alert, routing_key: str) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.dedup_key[:255],
        "payload": {
            "summary": view.title[:1024],
            "source": "spendstream",
            "severity": view.severity.value,
            "timestamp": alert.detected_at,
            "component": alert.scope,
            "group": alert.org_id,
            "class": alert.kind,
            "custom_details": {label: value for label, value in view.facts}
            | ({"top_cost_drivers": list(view.drivers)} if view.drivers else {}),
        },
        "links": [{"href": view.link, "text": "spendstream console"}],
        "client": "spendstream",
        "client_url": view.link,
    }


def pagerduty_resolve(dedup_key: str, routing_key: str) -> dict[str, Any]:
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key[:255]}


def sms_text(view: AlertView) -> str:
    """One SMS segment where possible: the title and the spend fact."""
    spent = next((value for label, value in view.facts if label == "Spent"), "")
    return f"{view.title}. {spent}".strip()[:320]


def email_message(view: AlertView, alert: Alert, sender: str, recipient: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[spendstream] {view.title}"
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(usegmt=True)
    # the same alert to the same recipient has the same Message-ID, so a mail system can drop a copy
    digest = hashlib.blake2b(f"{alert.dedup_key}|{recipient}".encode(), digest_size=16).hexdigest()
    message["Message-ID"] = f"<{digest}@spendstream>"
    message.set_content(view.text())
    rows = "".join(
        f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in view.facts
    )
    drivers = "".join(f"<li>{html.escape(d)}</li>" for d in view.drivers)
    message.add_alternative(
        f"<html><body><h3>{html.escape(view.title)}</h3><table>{rows}</table>"
        + (f"<p>Top cost drivers:</p><ul>{drivers}</ul>" if drivers else "")
        + f"<p><a href='{html.escape(view.link)}'>Open in the console</a></p></body></html>",
        subtype="html",
    )
    return message
