"""Where alerts go: named channels of an org and its routing. Pure: no I/O.

A :class:`ChannelSpec` is one named destination of an org (``channel/<org>/<name>``
on ``config.v1``): its type, its targets, an optional rate limit and optional
quiet hours. Secrets (webhook URLs, PagerDuty routing keys) may be written as
``env:NAME`` and are then read from the worker's environment when the channel
is applied, so the config topic and the audit table never hold them.

Routing: a budget names channels per stage (and per alert kind); an org's
``routing/<org>`` record names the channels for everything else. An 80 %
stage can go to Slack while 100 % pages on-call: that is escalation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.budgets import Channel
from schemas.errors import SpendstreamError
from schemas.webhook_targets import InternalTargetError, check_secret_name

__all__ = [
    "ROUTABLE_KINDS",
    "AlertConfigError",
    "ChannelSpec",
    "QuietHours",
    "Routing",
    "parse_budget_routes",
    "parse_channel",
    "parse_routing",
]


class AlertConfigError(SpendstreamError):
    """A channel or routing record that cannot be used; ``field`` names the field."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window (may wrap midnight) in which only critical alerts are sent on a channel."""

    start: time
    end: time
    timezone: str = "UTC"

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")  # E.164
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ENV = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
_DEFAULT_RATE = {
    Channel.EMAIL: 30,
    Channel.SLACK: 60,
    Channel.TEAMS: 60,
    Channel.SMS: 10,
    Channel.PAGERDUTY: 60,
}


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    org_id: str
    name: str
    type: Channel
    targets: tuple[str, ...]  # addresses, phone numbers, or one webhook URL / routing key
    rate_per_minute: int
    quiet_hours: QuietHours | None = None
    secret: bool = field(default=False)  # targets are secrets: never logged, never stored in history

    def shown(self, target: str) -> str:
        """How a target appears in logs and history."""
        return f"{self.type.value}:{self.name}" if self.secret else target

    def __repr__(self) -> str:
        targets = "***" if self.secret else ",".join(self.targets)
        return f"ChannelSpec({self.org_id}/{self.name} {self.type.value} -> {targets})"


def _resolve(org_id: str, value: Any, where: str, env: Mapping[str, str] | None) -> str | None:
    """The value, its ``env:NAME`` read from ``env``; None when ``env`` is None and the value is a reference.
    An org names only variables under its own prefix (:func:`schemas.webhook_targets.check_secret_name`)."""
    if not isinstance(value, str) or not value:
        raise AlertConfigError(where, "must be a non-empty string")
    match = _ENV.fullmatch(value)
    if match is None:
        return value
    try:
        check_secret_name(org_id, match.group(1))
    except InternalTargetError as exc:
        raise AlertConfigError(where, str(exc)) from None
    if env is None:
        return None
    resolved = env.get(match.group(1))
    if not resolved:
        raise AlertConfigError(where, f"environment variable {match.group(1)} is not set")
    return resolved


def _url(org_id: str, value: Any, where: str, env: Mapping[str, str] | None) -> str:
    url = _resolve(org_id, value, where, env)
    if url is None:
        return str(value)
    if not url.startswith(("https://", "http://")):
        raise AlertConfigError(where, "must be an http(s) URL")
    return url


def _clock(value: Any, where: str) -> time:
    if not isinstance(value, str) or not re.match(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", value):
        raise AlertConfigError(where, "expected HH:MM")
    return time.fromisoformat(value)


def parse_channel(org_id: str, name: str, body: Any, env: Mapping[str, str] | None) -> ChannelSpec:
    """Validate one channel record; ``env`` resolves ``env:NAME`` secrets.

    With ``env`` None (an admin's machine, before publishing) references are
    accepted as written and checked where the worker applies them."""
    where = f"channel/{org_id}/{name}"
    if not _NAME.fullmatch(name):
        raise AlertConfigError(where, "name: lower-case letters, digits, '-' and '_' (at most 63)")
    if not isinstance(body, dict):
        raise AlertConfigError(where, "expected a mapping")
    allowed = {"type", "to", "url", "routing_key", "rate_per_minute", "quiet_hours"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise AlertConfigError(f"{where}.{unknown[0]}", "unknown key")
    try:
        kind = Channel(str(body.get("type")))
    except ValueError:
        raise AlertConfigError(f"{where}.type", f"one of {', '.join(c.value for c in Channel)}") from None
    targets, secret = _targets(org_id, kind, body, where, env)
    rate = body.get("rate_per_minute", _DEFAULT_RATE[kind])
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= 10_000:
        raise AlertConfigError(f"{where}.rate_per_minute", "an integer from 1 to 10000")
    quiet = _quiet_hours(body.get("quiet_hours"), f"{where}.quiet_hours")
    return ChannelSpec(org_id, name, kind, targets, rate, quiet, secret)


def _targets(
    org_id: str, kind: Channel, body: dict[str, Any], where: str, env: Mapping[str, str] | None
) -> tuple[tuple[str, ...], bool]:
    """The channel's targets, and whether they are secrets."""
    if kind in (Channel.EMAIL, Channel.SMS):
        to = body.get("to")
        if not isinstance(to, list) or not to:
            raise AlertConfigError(f"{where}.to", "a non-empty list of recipients")
        pattern, what = (_EMAIL, "an email address") if kind is Channel.EMAIL else (_PHONE, "an E.164 phone number")
        for i, target in enumerate(to):
            if not isinstance(target, str) or not pattern.fullmatch(target):
                raise AlertConfigError(f"{where}.to[{i}]", f"{target!r} is not {what}")
        return tuple(to), False
    if kind in (Channel.SLACK, Channel.TEAMS):
        return (_url(org_id, body.get("url"), f"{where}.url", env),), True
    key = _resolve(org_id, body.get("routing_key"), f"{where}.routing_key", env)
    if key is None:
        key = str(body["routing_key"])
    elif not re.fullmatch(r"[A-Za-z0-9]{32}", key):
        raise AlertConfigError(f"{where}.routing_key", "a PagerDuty integration key is 32 letters and digits")
    return (key,), True


def _quiet_hours(spec: Any, where: str) -> QuietHours | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"from", "to", "timezone"}:
        raise AlertConfigError(where, "expected {from: HH:MM, to: HH:MM, timezone}")
    zone = spec.get("timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise AlertConfigError(f"{where}.timezone", f"unknown time zone {zone!r}") from None
    return QuietHours(_clock(spec.get("from"), f"{where}.from"), _clock(spec.get("to"), f"{where}.to"), zone)


ROUTABLE_KINDS = ("budget_stage", "cap_denied", "projected_exceed", "spike", "unpriced", "unconfigured_org")


@dataclass(frozen=True, slots=True)
class Routing:
    """An org's channels for alerts its budgets do not route: by kind, else ``default``."""

    org_id: str
    default: tuple[str, ...] = ()
    by_kind: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def channels_for(self, kind: str) -> tuple[str, ...]:
        return self.by_kind.get(kind, self.default)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or any(not isinstance(v, str) or not _NAME.fullmatch(v) for v in value):
        raise AlertConfigError(where, "a list of channel names")
    return tuple(value)


def parse_routing(org_id: str, body: Any) -> Routing:
    where = f"routing/{org_id}"
    if not isinstance(body, dict):
        raise AlertConfigError(where, "expected a mapping")
    unknown = sorted(set(body) - {"default", *ROUTABLE_KINDS})
    if unknown:
        raise AlertConfigError(
            f"{where}.{unknown[0]}", f"unknown key; use default or one of {', '.join(ROUTABLE_KINDS)}"
        )
    default = _names(body.get("default", []), f"{where}.default")
    by_kind = {kind: _names(body[kind], f"{where}.{kind}") for kind in ROUTABLE_KINDS if kind in body}
    return Routing(org_id, default, by_kind)


def parse_budget_routes(value: Any, stages: tuple[int, ...], where: str) -> dict[str, tuple[str, ...]]:
    """A budget's ``alerts``: stage (as written) or alert kind -> channel names."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AlertConfigError(where, "expected a mapping of stage or kind to channel names")
    routes: dict[str, tuple[str, ...]] = {}
    for key, names in value.items():
        text = str(key)
        if text.isdigit():
            if int(text) not in stages:
                raise AlertConfigError(f"{where}.{text}", f"not one of the budget's stages {list(stages)}")
        elif text not in ("cap_denied", "projected_exceed"):
            raise AlertConfigError(f"{where}.{text}", "a stage of the budget, cap_denied or projected_exceed")
        routes[text] = _names(names, f"{where}.{text}")
    return routes
