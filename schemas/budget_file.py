"""The budgets file that ``spendstream budgets apply`` reads (parsed here; no I/O)::

orgs:
  acme:
    timezone: Europe/Berlin          # periods are cut here; default UTC
    on_redis_unavailable: closed     # closed (deny, the default) | open (allow, counted)
budgets:
  - org: acme
    scope: department                # org | department | user | feature | model | provider | apikey
    id: eng                          # for scope org: the org id (or leave it out)
    period: monthly                  # daily | weekly | monthly
    limit: "5000.00"                 # USD, written as a string or a number
    mode: hard                       # hard (deny before the request) | soft (alert only)
    stages: [50, 80, 100]            # alert stages, percent of the limit
    recipients:
      slack: ["#eng-costs"]
      email: [lead@acme.example]
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml

from schemas.budgets import Budget, BudgetError, BudgetMode, Channel, OrgConfig, Period, ScopeKind
from schemas.money import MoneyError, parse_usd

__all__ = ["BudgetFile", "BudgetFileError", "OrgConfig", "parse_budget_file"]

MAX_LIMIT_NANOS = 2**53 - 1  # caps are checked in Redis Lua, whose numbers are doubles


class BudgetFileError(ValueError):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BudgetFile:
    orgs: dict[str, OrgConfig]
    budgets: tuple[Budget, ...]


class _Loader(yaml.SafeLoader):
    """Safe YAML whose floats become Decimal from their literal text: no float touches money."""


_Loader.add_constructor(
    "tag:yaml.org,2002:float",
    lambda loader, node: Decimal(str(loader.construct_scalar(node)).replace("_", "")),  # type: ignore[arg-type]
)


def _limit(value: Any, where: str) -> int:
    if isinstance(value, bool) or value is None:
        raise BudgetFileError(where, "a USD amount is required")
    try:
        nanos = parse_usd(str(value) if isinstance(value, int | Decimal) else value)
    except MoneyError as exc:
        raise BudgetFileError(where, str(exc)) from None
    if nanos > MAX_LIMIT_NANOS:
        raise BudgetFileError(where, "above the largest exact cap (9,007,199 USD per period)")
    return nanos


def _budget(spec: Any, orgs: dict[str, OrgConfig], where: str) -> Budget:
    if not isinstance(spec, dict):
        raise BudgetFileError(where, "expected a mapping")
    unknown = set(spec) - {"org", "scope", "id", "period", "limit", "mode", "stages", "recipients"}
    if unknown:
        raise BudgetFileError(f"{where}.{sorted(unknown)[0]}", "unknown key")
    org = spec.get("org")
    if not isinstance(org, str):
        raise BudgetFileError(f"{where}.org", "required")
    try:
        scope = ScopeKind(spec.get("scope", "org"))
    except ValueError:
        raise BudgetFileError(f"{where}.scope", f"one of {', '.join(k.value for k in ScopeKind)}") from None
    try:
        period = Period(spec.get("period", "monthly"))
    except ValueError:
        raise BudgetFileError(f"{where}.period", "one of daily, weekly, monthly") from None
    try:
        mode = BudgetMode(spec.get("mode", "soft"))
    except ValueError:
        raise BudgetFileError(f"{where}.mode", "one of hard, soft") from None
    scope_id = spec.get("id", org if scope is ScopeKind.ORG else None)
    if not isinstance(scope_id, str):
        raise BudgetFileError(f"{where}.id", "required for this scope")
    stages = spec.get("stages", [50, 80, 100])
    if not isinstance(stages, list):
        raise BudgetFileError(f"{where}.stages", "a list of percentages")
    recipients: dict[Channel, tuple[str, ...]] = {}
    for channel, targets in (spec.get("recipients") or {}).items():
        try:
            recipients[Channel(channel)] = tuple(str(t) for t in targets)
        except (ValueError, TypeError):
            raise BudgetFileError(f"{where}.recipients.{channel}", "unknown channel or not a list") from None
    try:
        return Budget(
            org_id=org,
            scope=scope,
            scope_id=scope_id,
            period=period,
            limit_nanos=_limit(spec.get("limit"), f"{where}.limit"),
            mode=mode,
            stages=tuple(stages),
            timezone=orgs.get(org, OrgConfig(org)).timezone,
            recipients=recipients,
        )
    except BudgetError as exc:
        raise BudgetFileError(where, str(exc)) from None


def parse_budget_file(text: str) -> BudgetFile:
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise BudgetFileError("$", f"malformed YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise BudgetFileError("$", "expected a mapping with orgs and budgets")
    unknown = set(doc) - {"orgs", "budgets"}
    if unknown:
        raise BudgetFileError(f"$.{sorted(unknown)[0]}", "unknown key")
    orgs: dict[str, OrgConfig] = {}
    for org_id, org_spec in (doc.get("orgs") or {}).items():
        spec = org_spec or {}
        policy = spec.get("on_redis_unavailable", "closed")
        if policy not in ("closed", "open"):
            raise BudgetFileError(f"orgs.{org_id}.on_redis_unavailable", "closed or open")
        try:
            orgs[str(org_id)] = OrgConfig(str(org_id), str(spec.get("timezone", "UTC")), policy)
        except BudgetError as exc:
            raise BudgetFileError(f"orgs.{org_id}", str(exc)) from None
    budgets = tuple(_budget(spec, orgs, f"budgets[{i}]") for i, spec in enumerate(doc.get("budgets") or []))
    for budget in budgets:
        orgs.setdefault(budget.org_id, OrgConfig(budget.org_id))
    seen: set[tuple[str, str]] = set()
    for i, budget in enumerate(budgets):
        if (budget.org_id, budget.key) in seen:
            raise BudgetFileError(f"budgets[{i}]", f"a second budget for {budget.org_id} {budget.key}")
        seen.add((budget.org_id, budget.key))
    return BudgetFile(orgs, budgets)
