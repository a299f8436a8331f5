"""Records of the compacted ``config.v1`` topic: budgets, orgs and prices, by key. Pure.

Keys and values (JSON), the latest value of a key wins; a null value deletes:

* ``org/<org>`` -> ``{"timezone": ..., "on_redis_unavailable": "closed"|"open"}``
* ``budget/<org>/<scope>/<id>/<period>`` -> ``{"limit_nanos": ..., "mode": ..., "stages": [...], "recipients": {...}}``
* ``prices/litellm/<effective_from>`` -> ``{"effective_from": ..., "map": "<LiteLLM price-map JSON text>"}``
* ``prices/overrides`` -> ``{"yaml": "<overrides YAML text>"}``
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.budgets import Budget, BudgetMode, Channel, OrgConfig, Period, ScopeKind
from schemas.price_sources import load_overrides, parse_litellm_price_map
from schemas.pricing import PriceCatalogue, PriceEntry

__all__ = [
    "ConfigRecord",
    "ConfigState",
    "budget_record",
    "org_record",
    "prices_litellm_record",
    "prices_overrides_record",
]


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    key: str
    value: bytes | None

    @property
    def kind(self) -> str:
        return self.key.split("/", 1)[0]


def org_record(org: OrgConfig) -> ConfigRecord:
    body = {"timezone": org.timezone, "on_redis_unavailable": org.on_redis_unavailable}
    return ConfigRecord(f"org/{org.org_id}", json.dumps(body).encode())


def budget_key(org_id: str, scope: str, scope_id: str, period: str) -> str:
    return f"budget/{org_id}/{scope}/{scope_id}/{period}"


def budget_record(budget: Budget) -> ConfigRecord:
    body = {
        "limit_nanos": budget.limit_nanos,
        "mode": budget.mode.value,
        "stages": list(budget.stages),
        "timezone": budget.timezone,
        "recipients": {channel.value: list(targets) for channel, targets in budget.recipients.items()},
    }
    key = budget_key(budget.org_id, budget.scope.value, budget.scope_id, budget.period.value)
    return ConfigRecord(key, json.dumps(body).encode())


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
    return Budget(
        org_id=org_id,
        scope=ScopeKind(scope),
        scope_id=scope_id,
        period=Period(period),
        limit_nanos=int(body["limit_nanos"]),
        mode=BudgetMode(body["mode"]),
        stages=tuple(int(s) for s in body["stages"]),
        timezone=body.get("timezone", "UTC"),
        recipients={Channel(c): tuple(t) for c, t in body.get("recipients", {}).items()},
    )


def parse_org(key: str, value: bytes) -> OrgConfig:
    body = json.loads(value)
    return OrgConfig(key.split("/", 1)[1], body.get("timezone", "UTC"), body.get("on_redis_unavailable", "closed"))


class ConfigState:
    """The current configuration, folded from records in topic order."""

    def __init__(self) -> None:
        self.orgs: dict[str, OrgConfig] = {}
        self.budgets: dict[str, Budget] = {}
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
        if kind == "org":
            org_id = record.key.split("/", 1)[1]
            if record.value is None:
                self.orgs.pop(org_id, None)
            else:
                self.orgs[org_id] = parse_org(record.key, record.value)
        elif kind == "budget":
            if record.value is None:
                self.budgets.pop(record.key, None)
            else:
                self.budgets[record.key] = parse_budget(record.key, record.value)
        elif record.key.startswith("prices/litellm/"):
            if record.value is None:
                self._litellm.pop(record.key, None)
            else:
                body = json.loads(record.value)
                self._litellm[record.key] = (datetime.fromisoformat(body["effective_from"]), body["map"])
            self._catalogue = None
        elif record.key == "prices/overrides":
            self._overrides = None if record.value is None else json.loads(record.value)["yaml"]
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
