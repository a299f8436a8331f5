"""Records of the compacted ``config.v1`` topic: budgets, orgs and prices, by key. Pure.

Keys and values (JSON), the latest value of a key wins; a null value deletes:

* ``org/<org>`` -> ``{"timezone": ..., "on_redis_unavailable": "closed"|"open", "min_estimate_nanos": ...,
  "unpriced_models": "deny"|"allow", "tags": [...], "trust_request_tags": bool}`` (with the chargeback rule,
  ``notify_closed_periods`` and ``holidays`` when set)
* ``budget/<org>/<scope>/<id>/<period>`` -> ``{"limit_nanos": ..., "mode": ..., "stages": [...], "alerts": {...}}``
* ``channel/<org>/<name>`` -> a channel as written in the budgets file (secrets as ``env:NAME``)
* ``routing/<org>`` -> ``{"default": [...], "spike": [...], ...}``
* ``prices/litellm/<effective_from>`` -> ``{"effective_from": ..., "map": "<LiteLLM price-map JSON text>"}``
* ``prices/overrides`` -> ``{"yaml": "<overrides YAML text>"}``
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from schemas.allocation_tags import parse_tag_rules, tag_bodies
from schemas.budget_file import BudgetFile
from schemas.budgets import DEFAULT_MIN_ESTIMATE_NANOS, Budget, BudgetMode, OrgConfig, Period, ScopeKind
from schemas.channels import ChannelSpec, Routing, parse_budget_routes, parse_channel, parse_routing
from schemas.cost_allocation import parse_chargeback
from schemas.focus_export import PeriodClose, close_record_body, parse_close
from schemas.price_sources import load_overrides, parse_litellm_price_map
from schemas.pricing import PriceCatalogue, PriceEntry
from schemas.report_templates import ReportTemplate, parse_template, template_record_body

__all__ = [
    "ConfigRecord",
    "ConfigState",
    "budget_record",
    "channel_record",
    "close_record",
    "file_records",
    "org_record",
    "prices_litellm_record",
    "prices_overrides_record",
    "routing_record",
]


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    key: str
    value: bytes | None

    @property
    def kind(self) -> str:
        return self.key.split("/", 1)[0]


def org_record(org: OrgConfig) -> ConfigRecord:
    body = {
        "timezone": org.timezone,
        "on_redis_unavailable": org.on_redis_unavailable,
        "min_estimate_nanos": org.min_estimate_nanos,
        "unpriced_models": org.unpriced_models,
    }
    if org.chargeback is not None:
        body["chargeback"] = org.chargeback.body()
    if org.notify_closed_periods:
        body["notify_closed_periods"] = True
    if org.tags:
        body["tags"] = tag_bodies(org.tags)
    if org.trust_request_tags:
        body["trust_request_tags"] = True
    if org.holidays:
        body["holidays"] = org.holidays
    return ConfigRecord(f"org/{org.org_id}", json.dumps(body).encode())


def budget_key(org_id: str, scope: str, scope_id: str, period: str) -> str:
    return f"budget/{org_id}/{scope}/{scope_id}/{period}"


def budget_record(budget: Budget) -> ConfigRecord:
    body = {
        "limit_nanos": budget.limit_nanos,
        "mode": budget.mode.value,
        "stages": list(budget.stages),
        "timezone": budget.timezone,
        "alerts": {route: list(names) for route, names in budget.alerts.items()},
    }
    key = budget_key(budget.org_id, budget.scope.value, budget.scope_id, budget.period.value)
    return ConfigRecord(key, json.dumps(body).encode())


def channel_record(org_id: str, name: str, body: dict[str, Any]) -> ConfigRecord:
    parse_channel(org_id, name, body, None)  # refuse a bad channel before it is published
    return ConfigRecord(f"channel/{org_id}/{name}", json.dumps(body).encode())


def routing_record(org_id: str, body: dict[str, Any]) -> ConfigRecord:
    parse_routing(org_id, body)
    return ConfigRecord(f"routing/{org_id}", json.dumps(body).encode())


def file_records(parsed: BudgetFile, current: ConfigState) -> tuple[list[ConfigRecord], int]:
    """The records that make the topic say what the budgets file says, for the orgs it names.

    Budgets, channels and routing of those orgs that the file no longer lists are
    deleted (a null value); returns the records and how many are deletions."""
    records = [org_record(org) for org in parsed.orgs.values()]
    records += [channel_record(org, name, body) for (org, name), (_, body) in parsed.channels.items()]
    records += [routing_record(org, body) for org, (_, body) in parsed.routing.items()]
    records += [budget_record(budget) for budget in parsed.budgets]
    wanted = {record.key for record in records}
    current_keys = [
        *current.budgets,
        *(f"channel/{org}/{name}" for org, name in current.channels),
        *(f"routing/{org}" for org in current.routing),
    ]
    removed = [key for key in current_keys if key.split("/")[1] in parsed.orgs and key not in wanted]
    return records + [ConfigRecord(key, None) for key in removed], len(removed)


def close_record(close: PeriodClose) -> ConfigRecord:
    return ConfigRecord(f"close/{close.org_id}/{close.month:%Y-%m}", close_record_body(close))


def template_record(template: ReportTemplate) -> ConfigRecord:
    return ConfigRecord(f"report/{template.org_id}/{template.name}", template_record_body(template))


def prices_litellm_record(text: str, effective_from: datetime) -> ConfigRecord:
    parse_litellm_price_map(text, effective_from)  # refuse a bad map before it is published
    body = {"effective_from": effective_from.isoformat(), "map": text}
    return ConfigRecord(f"prices/litellm/{effective_from.isoformat()}", json.dumps(body).encode())


def prices_overrides_record(text: str) -> ConfigRecord:
    load_overrides(text)  # refuse a bad file before it is published
    return ConfigRecord("prices/overrides", json.dumps({"yaml": text}).encode())


def parse_budget(key: str, value: bytes) -> Budget:
    _, org_id, scope, scope_id_and_period = key.split("/", 3)
    scope_id, _, period = scope_id_and_period.rpartition("/")
    body: dict[str, Any] = json.loads(value)
    stages = tuple(int(s) for s in body["stages"])
    return Budget(
        org_id=org_id,
        scope=ScopeKind(scope),
        scope_id=scope_id,
        period=Period(period),
        limit_nanos=int(body["limit_nanos"]),
        mode=BudgetMode(body["mode"]),
        stages=stages,
        timezone=body.get("timezone", "UTC"),
        alerts=parse_budget_routes(body.get("alerts"), stages, f"{key}.alerts"),
    )


def parse_org(key: str, value: bytes) -> OrgConfig:
    body = json.loads(value)
    return OrgConfig(
        key.split("/", 1)[1],
        body.get("timezone", "UTC"),
        body.get("on_redis_unavailable", "closed"),
        int(body.get("min_estimate_nanos", DEFAULT_MIN_ESTIMATE_NANOS)),
        body.get("unpriced_models", "deny"),
        parse_chargeback(body["chargeback"], f"{key}.chargeback") if "chargeback" in body else None,
        body.get("notify_closed_periods", False) is True,
        parse_tag_rules(body.get("tags"), f"{key}.tags"),
        body.get("trust_request_tags", False) is True,
        body.get("holidays", ""),
    )


def _put(into: dict[Any, Any], key: Any, value: bytes | None, parse: Callable[[bytes], Any]) -> None:
    """A record's effect on one map: a null value deletes the key, any other value is parsed (or refused)."""
    if value is None:
        into.pop(key, None)
    else:
        into[key] = parse(value)


def _litellm_entry(value: bytes) -> tuple[datetime, str]:
    body = json.loads(value)
    return datetime.fromisoformat(body["effective_from"]), body["map"]


class ConfigState:
    """The current configuration, folded from records in topic order."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        # resolves channels' env:NAME secrets; None (an admin's CLI) accepts them unchecked
        self.env: Mapping[str, str] | None = env
        self.orgs: dict[str, OrgConfig] = {}
        self.budgets: dict[str, Budget] = {}
        self.channels: dict[tuple[str, str], ChannelSpec] = {}
        self.routing: dict[str, Routing] = {}
        self.reports: dict[tuple[str, str], ReportTemplate] = {}  # saved report templates by (org, name)
        self.closes: dict[tuple[str, date], PeriodClose] = {}  # closed billing months by (org, first day)
        self._litellm: dict[str, tuple[datetime, str]] = {}
        self._overrides: str | None = None
        self._catalogue: PriceCatalogue | None = None

    def apply(self, record: ConfigRecord) -> None:
        """Fold one record in. Raises ValueError (with the key) for a record that cannot be used."""
        try:
            self._apply(record)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"config record {record.key}: {exc}") from exc

    def _apply(self, record: ConfigRecord) -> None:
        kind = record.kind
        key, value = record.key, record.value
        if kind == "org":
            _put(self.orgs, key.split("/", 1)[1], value, lambda v: parse_org(key, v))
        elif kind == "budget":
            _put(self.budgets, key, value, lambda v: parse_budget(key, v))
        elif kind == "channel":
            _, org_id, name = key.split("/", 2)
            _put(self.channels, (org_id, name), value, lambda v: parse_channel(org_id, name, json.loads(v), self.env))
        elif kind == "routing":
            org_id = key.split("/", 1)[1]
            _put(self.routing, org_id, value, lambda v: parse_routing(org_id, json.loads(v)))
        elif kind == "report":
            _, org_id, name = key.split("/", 2)
            _put(self.reports, (org_id, name), value, lambda v: parse_template(org_id, name, json.loads(v)))
        elif kind == "close":
            _, org_id, month = key.split("/", 2)
            if value is not None:  # a close is permanent: a deletion is ignored
                close = parse_close(org_id, month, json.loads(value))
                self.closes.setdefault((org_id, close.month), close)
        elif key.startswith("prices/litellm/"):
            _put(self._litellm, key, value, _litellm_entry)
            self._catalogue = None
        elif key == "prices/overrides":
            self._overrides = None if value is None else json.loads(value)["yaml"]
            self._catalogue = None
        else:
            raise ValueError("unknown key")

    def catalogue(self) -> PriceCatalogue:
        if self._catalogue is None:
            entries: list[PriceEntry] = []
            for effective_from, text in self._litellm.values():
                entries.extend(parse_litellm_price_map(text, effective_from))
            catalogue = PriceCatalogue.of(entries)
            self._catalogue = load_overrides(self._overrides, catalogue) if self._overrides else catalogue
        return self._catalogue
