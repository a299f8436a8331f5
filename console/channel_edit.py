"""Alert channels and routing from Budget Settings' forms and the API (pure): the records they become go
through the same checks as a budgets file's ``channels`` and ``routing``.

A webhook URL or PagerDuty key is a secret: write it as ``env:NAME`` (read by the worker from its
environment) so that it never travels through the config topic in the clear. ``NAME`` must be under the
org's own prefix, and a URL written out must name a public host (:mod:`schemas.webhook_targets`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas.channels import ROUTABLE_KINDS, AlertConfigError, ChannelSpec, parse_routing
from schemas.config_records import ConfigRecord, channel_record, routing_record
from schemas.webhook_targets import InternalTargetError, check_webhook_url, prefix_shared_by

__all__ = ["channel_from_input", "channel_view", "routing_from_input"]


def _list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value or "").replace(";", ",").split(",") if part.strip()]


def channel_from_input(
    org_id: str, data: Mapping[str, Any], allow: frozenset[str] = frozenset(), orgs: Iterable[str] = ()
) -> ConfigRecord:
    """``name``, ``type`` and ``recipients`` (addresses or phone numbers, comma-separated; a webhook URL; a
    routing key); optionally ``rate_per_minute``. Raises :class:`AlertConfigError` naming the form field.

    ``allow``: the operator's hosts that a webhook may name although they are internal; ``orgs``: the
    other orgs, whose secret prefix must not be this org's."""
    name, kind = str(data.get("name", "")).strip(), str(data.get("type", "")).strip()
    recipients = data.get("recipients", "")
    body: dict[str, Any] = {"type": kind}
    if kind in ("email", "sms"):
        body["to"] = _list(recipients)
    elif kind in ("slack", "teams"):
        body["url"] = str(recipients).strip()
        if not body["url"].startswith("env:"):
            try:
                check_webhook_url(body["url"], allow)
            except InternalTargetError as exc:
                raise AlertConfigError("recipients", str(exc)) from None
    elif kind == "pagerduty":
        body["routing_key"] = str(recipients).strip()
    if str(body.get("url", body.get("routing_key", ""))).startswith("env:"):
        shared = prefix_shared_by(org_id, orgs)
        if shared is not None:
            raise AlertConfigError(
                "recipients", f"org {shared} has the same secret prefix; ask the operator to configure secrets"
            )
    if data.get("rate_per_minute") not in (None, ""):
        try:
            body["rate_per_minute"] = int(str(data["rate_per_minute"]))
        except ValueError:
            raise AlertConfigError("rate_per_minute", "an integer from 1 to 10000") from None
    try:
        return channel_record(org_id, name, body)
    except AlertConfigError as exc:
        raise AlertConfigError(_form_field(exc.field, exc.reason), exc.reason) from None


def _form_field(field: str, reason: str) -> str:
    tail = field.split(".", 1)[1] if "." in field else ""
    if not tail:
        return "name" if reason.startswith("name") else "type"
    head = tail.split("[", 1)[0].split(".", 1)[0]
    return {"to": "recipients", "url": "recipients", "routing_key": "recipients"}.get(head, head)


def routing_from_input(org_id: str, data: Mapping[str, Any], known: set[str]) -> ConfigRecord:
    """``default`` and any of the alert kinds, each a list (or comma-separated) of the org's channel names."""
    body = {key: _list(data[key]) for key in ("default", *ROUTABLE_KINDS) if _list(data.get(key))}
    for key, names in body.items():
        for name in names:
            if name not in known:
                raise AlertConfigError(key, f"no alert channel {name!r} in your org")
    try:
        parse_routing(org_id, body)
    except AlertConfigError as exc:
        raise AlertConfigError(exc.field.rsplit(".", 1)[-1], exc.reason) from None
    return routing_record(org_id, body)


def channel_view(spec: ChannelSpec) -> dict[str, Any]:
    """A channel as shown: secret targets (webhooks, keys) are never sent back."""
    return {
        "name": spec.name,
        "type": spec.type.value,
        "recipients": ["(secret)"] if spec.secret else list(spec.targets),
        "rate_per_minute": spec.rate_per_minute,
    }
