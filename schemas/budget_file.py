"""The budgets file that ``spendstream budgets apply`` reads (parsed here; no I/O)::

orgs:
  acme:
    timezone: Europe/Berlin          # periods are cut here; default UTC
    on_redis_unavailable: closed     # closed (deny, the default) | open (allow, counted)
    min_estimate: "0.000001"         # USD; the smallest reservation (default 1,000 nano-USD)
    unpriced_models: deny            # deny (a model without a price is refused under a hard cap) | allow
    notify_closed_periods: false     # true: also send stage alerts of periods that had ended (a backfill)
    tags: [project, {customer: {missing: internal}}]  # allocation tags: metadata keys spend is grouped by
    trust_request_tags: false        # true: a request's own metadata may name a capped tag value
    holidays: DE-BY                  # holiday calendar (holidays package): a country, or country-region
budgets:
  - org: acme
    scope: department                # org | department | user | feature | model | provider | apikey
    id: eng                          # for scope org: the org id (or leave it out)
    period: monthly                  # daily | weekly | monthly
    limit: "5000.00"                 # USD, written as a string or a number
    mode: hard                       # hard (deny before the request) | soft (alert only)
    stages: [50, 80, 100]            # alert stages, percent of the limit
    alerts:                          # stage or kind -> channels (below); escalate by stage
      80: [eng-slack]
      100: [oncall-pd, oncall-sms]
      cap_denied: [eng-slack]
channels:                            # per org, by name; secrets as env:NAME, read by the worker
  acme:
    eng-slack: {type: slack, url: "env:ACME_ENG_SLACK_WEBHOOK", rate_per_minute: 30}
    oncall-pd: {type: pagerduty, routing_key: "env:SPENDSTREAM_SECRET_ACME_PAGERDUTY_KEY"}
    oncall-sms: {type: sms, to: ["+15551230000"], quiet_hours: {from: "22:00", to: "07:00", timezone: Europe/Berlin}}
    leads: {type: email, to: [lead@acme.example]}
routing:                             # an org's channels for alerts its budgets do not route
  acme: {default: [leads], spike: [eng-slack]}
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml

from schemas.allocation_tags import TagError, parse_tag_rules, split_tag_scope
from schemas.budgets import DEFAULT_MIN_ESTIMATE_NANOS, Budget, BudgetError, BudgetMode, OrgConfig, Period, ScopeKind
from schemas.channels import AlertConfigError, ChannelSpec, Routing, parse_budget_routes, parse_channel, parse_routing
from schemas.cost_allocation import ChargebackError, parse_chargeback
from schemas.errors import SpendstreamError
from schemas.holiday_calendar import check_calendar
from schemas.money import MoneyError, parse_usd

__all__ = ["BudgetFile", "BudgetFileError", "OrgConfig", "parse_budget_file", "parse_budget_spec"]

MAX_LIMIT_NANOS = 2**53 - 1  # caps are checked in Redis Lua, whose numbers are doubles


class BudgetFileError(SpendstreamError):
    """A budgets file that cannot be applied; ``field`` names the entry and field."""


@dataclass(frozen=True, slots=True)
class BudgetFile:
    orgs: dict[str, OrgConfig]
    budgets: tuple[Budget, ...]
    channels: dict[tuple[str, str], tuple[ChannelSpec, dict[str, Any]]]  # (org, name) -> spec, body as written
    routing: dict[str, tuple[Routing, dict[str, Any]]]


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


def parse_budget_spec(spec: Any, orgs: dict[str, OrgConfig], where: str) -> Budget:
    """One budget as the file writes it (``org``, ``scope``, ``id``, ``period``, ``limit`` in USD, ``mode``,
    ``stages``, ``alerts``): the budgets file and the console both read budgets through here."""
    if not isinstance(spec, dict):
        raise BudgetFileError(where, "expected a mapping")
    unknown = set(spec) - {"org", "scope", "id", "period", "limit", "mode", "stages", "alerts"}
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
    try:
        routes = parse_budget_routes(spec.get("alerts"), tuple(stages), f"{where}.alerts")
    except AlertConfigError as exc:
        raise BudgetFileError(exc.field, exc.reason) from None
    if scope is ScopeKind.TAG:
        _declared(scope_id, orgs.get(org, OrgConfig(org)), f"{where}.id")
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
            alerts=routes,
        )
    except BudgetError as exc:
        field = _SPEC_FIELD.get(exc.field, exc.field)
        raise BudgetFileError(f"{where}.{field}", exc.reason) from None


_SPEC_FIELD = {"org_id": "org", "scope_id": "id", "limit_nanos": "limit", "timezone": "org"}
_ORG_KEYS = {
    "timezone",
    "on_redis_unavailable",
    "min_estimate",
    "unpriced_models",
    "chargeback",
    "notify_closed_periods",
    "tags",
    "trust_request_tags",
    "holidays",
}


def _calendar(code: Any, where: str) -> str:
    """A country and region the holidays package knows ("US", "US-CA"), or empty."""
    if not isinstance(code, str):
        raise BudgetFileError(where, "a country code ('US') and optionally its region ('US-CA')")
    try:
        check_calendar(code)
    except BudgetError as exc:
        raise BudgetFileError(where, exc.reason) from None
    return code


def _org(org_id: str, spec: Any) -> OrgConfig:
    where = f"orgs.{org_id}"
    if not isinstance(spec, dict):
        raise BudgetFileError(where, "expected a mapping")
    unknown = set(spec) - _ORG_KEYS
    if unknown:
        raise BudgetFileError(f"{where}.{sorted(unknown)[0]}", "unknown key")
    policy = spec.get("on_redis_unavailable", "closed")
    if policy not in ("closed", "open"):
        raise BudgetFileError(f"{where}.on_redis_unavailable", "closed or open")
    unpriced = spec.get("unpriced_models", "deny")
    if unpriced not in ("deny", "allow"):
        raise BudgetFileError(f"{where}.unpriced_models", "deny or allow")
    floor = DEFAULT_MIN_ESTIMATE_NANOS
    if "min_estimate" in spec:
        try:
            floor = parse_usd(str(spec["min_estimate"]))
        except ValueError as exc:
            raise BudgetFileError(f"{where}.min_estimate", str(exc)) from None
    chargeback = None
    if "chargeback" in spec:
        try:
            chargeback = parse_chargeback(spec["chargeback"], f"{where}.chargeback")
        except ChargebackError as exc:
            raise BudgetFileError(exc.field, exc.reason) from None
    late = spec.get("notify_closed_periods", False)
    trust = spec.get("trust_request_tags", False)
    for name, flag in (("notify_closed_periods", late), ("trust_request_tags", trust)):
        if not isinstance(flag, bool):
            raise BudgetFileError(f"{where}.{name}", "true or false")
    try:
        tags = parse_tag_rules(spec.get("tags"), f"{where}.tags")
    except TagError as exc:
        raise BudgetFileError(exc.field, exc.reason) from None
    calendar = _calendar(spec.get("holidays", ""), f"{where}.holidays")
    try:
        zone = str(spec.get("timezone", "UTC"))
        return OrgConfig(org_id, zone, policy, floor, unpriced, chargeback, late, tags, trust, calendar)
    except BudgetError as exc:
        raise BudgetFileError(where, str(exc)) from None


def _declared(scope_id: str, org: OrgConfig, where: str) -> None:
    """A tag budget names a declared tag, and one of its listed values when it lists them."""
    pair = split_tag_scope(scope_id)
    if pair is None:
        raise BudgetFileError(where, f"{scope_id[:60]!r} is not <tag>=<value> (project=apollo)")
    rule = org.tag(pair[0])
    if rule is None:
        raise BudgetFileError(where, f"{pair[0]!r} is not one of {org.org_id}'s allocation tags; declare it first")
    if rule.values and pair[1] not in rule.values and pair[1] != rule.missing:
        raise BudgetFileError(where, f"{pair[1]!r} is not one of the values tag {pair[0]!r} lists")


def parse_budget_file(text: str) -> BudgetFile:
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise BudgetFileError("$", f"malformed YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise BudgetFileError("$", "expected a mapping with orgs and budgets")
    unknown = set(doc) - {"orgs", "budgets", "channels", "routing"}
    if unknown:
        raise BudgetFileError(f"$.{sorted(unknown)[0]}", "unknown key")
    orgs: dict[str, OrgConfig] = {}
    for org_id, org_spec in (doc.get("orgs") or {}).items():
        orgs[str(org_id)] = _org(str(org_id), org_spec or {})
    budgets = tuple(parse_budget_spec(spec, orgs, f"budgets[{i}]") for i, spec in enumerate(doc.get("budgets") or []))
    for budget in budgets:
        orgs.setdefault(budget.org_id, OrgConfig(budget.org_id))
    channels = _channels(doc.get("channels"))
    routing = _routing(doc.get("routing"), channels)
    for i, budget in enumerate(budgets):
        for route, names in budget.alerts.items():
            _known(names, budget.org_id, channels, f"budgets[{i}].alerts.{route}")
    seen: set[tuple[str, str]] = set()
    for i, budget in enumerate(budgets):
        if (budget.org_id, budget.key) in seen:
            raise BudgetFileError(f"budgets[{i}]", f"a second budget for {budget.org_id} {budget.key}")
        seen.add((budget.org_id, budget.key))
    return BudgetFile(orgs, budgets, channels, routing)


def _channels(section: Any) -> dict[tuple[str, str], tuple[ChannelSpec, dict[str, Any]]]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise BudgetFileError("channels", "expected org -> name -> channel")
    found: dict[tuple[str, str], tuple[ChannelSpec, dict[str, Any]]] = {}
    for org_id, named in section.items():
        if not isinstance(named, dict):
            raise BudgetFileError(f"channels.{org_id}", "expected name -> channel")
        for name, body in named.items():
            try:
                # env:NAME secrets are resolved by the worker that sends, not here
                found[(str(org_id), str(name))] = (parse_channel(str(org_id), str(name), body, None), body)
            except AlertConfigError as exc:
                field = exc.field.removeprefix(f"channel/{org_id}/{name}")
                raise BudgetFileError(f"channels.{org_id}.{name}{field}", exc.reason) from None
    return found


def _routing(
    section: Any, channels: dict[tuple[str, str], tuple[ChannelSpec, dict[str, Any]]]
) -> dict[str, tuple[Routing, dict[str, Any]]]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise BudgetFileError("routing", "expected org -> routing")
    found: dict[str, tuple[Routing, dict[str, Any]]] = {}
    for org_id, body in section.items():
        try:
            routing = parse_routing(str(org_id), body)
        except AlertConfigError as exc:
            raise BudgetFileError(
                f"routing.{org_id}{exc.field.removeprefix(f'routing/{org_id}')}", exc.reason
            ) from None
        for kind, names in [("default", routing.default), *routing.by_kind.items()]:
            _known(names, str(org_id), channels, f"routing.{org_id}.{kind}")
        found[str(org_id)] = (routing, body)
    return found


def _known(names: tuple[str, ...], org_id: str, channels: dict[tuple[str, str], Any], where: str) -> None:
    for name in names:
        if (org_id, name) not in channels:
            raise BudgetFileError(where, f"unknown channel {name!r}; define it under channels.{org_id}")
