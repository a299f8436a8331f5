"""Price catalogue sources: LiteLLM's public price map and a YAML file of overrides.

Both parse text the caller has read; no file or network I/O here. Numbers
never pass through ``float``: JSON is parsed with ``parse_float=Decimal`` and
the YAML loader builds ``Decimal`` from the literal text.

YAML overrides (prices in USD, per token unless ``unit`` says otherwise)::

    unpriced_policy: zero            # reject | zero | fallback
    fallback: {provider: openai, model: gpt-4o-mini}
    discounts: {acme: "0.10"}        # 10 % off every event of org acme
    prices:
      - provider: openai
        model: gpt-4o
        effective_from: 2024-08-06T00:00:00Z
        unit: per_million_tokens     # or per_token (the default)
        input: 2.50
        output: 10.00
        cache_read: 1.25
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import yaml

from schemas.pricing import PriceCatalogue, PriceEntry, PricingError, TierPrices, TokenPrices, UnpricedPolicy

__all__ = ["PriceFileError", "load_overrides", "parse_litellm_price_map"]

_PER_MILLION = Decimal(1_000_000)

# LiteLLM field -> our token type
_LITELLM_FIELDS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "output_cost_per_reasoning_token": "reasoning",
}
# Fields that change with the service tier and the prompt's length, as LiteLLM reads them.
_TIERED_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
)
_SERVICE_TIERS = ("flex", "priority", "balanced", "ultrafast")  # suffixes of LiteLLM's tier prices
_ABOVE = re.compile(
    r"^(?:" + "|".join(_TIERED_FIELDS) + r")_above_(\d+)(k?)_tokens(?:_(" + "|".join(_SERVICE_TIERS) + r"))?$"
)
_INCLUSIVE_PROVIDERS = frozenset({"xai"})  # bill the higher tier once the prompt reaches the threshold
_NOT_MODELLED = ("tiered_pricing", "off_peak_pricing")  # pricing rules the catalogue does not hold


class PriceFileError(PricingError):
    """A price file entry that cannot be used; ``field`` names the entry and field."""


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool):
        raise PriceFileError(where, "expected a number")
    if isinstance(value, float):
        raise PriceFileError(where, "floats are refused; numbers must be read as Decimal")
    if isinstance(value, int | Decimal):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except ArithmeticError:  # InvalidOperation, Overflow
            raise PriceFileError(where, f"not a number: {value!r}") from None
    else:
        raise PriceFileError(where, f"expected a number, got {type(value).__name__}")
    if not result.is_finite() or result < 0:
        raise PriceFileError(where, f"must be a finite number >= 0, got {value}")
    return result


def _rates(spec: Mapping[str, Any], suffix: str, fallback: Mapping[str, Decimal | None], key: str) -> dict[str, Any]:
    """The four tiered rates with ``suffix`` (a service tier's), each falling back to ``fallback`` (the
    standard rate), as LiteLLM's ``get_cost_per_unit`` does."""
    out: dict[str, Decimal | None] = {}
    for source_field in _TIERED_FIELDS:
        value = spec.get(source_field + suffix)
        out[source_field] = (
            _decimal(value, f"{key}.{source_field}{suffix}") if value is not None else fallback[source_field]
        )
    return out


def _token_prices(rates: Mapping[str, Decimal | None], reasoning: Decimal | None) -> TokenPrices:
    """LiteLLM bills a cache rate it does not know at the input rate, and reasoning at the output rate."""
    values = {_LITELLM_FIELDS[f]: v for f, v in rates.items() if v is not None}
    if reasoning is not None:
        values["reasoning"] = reasoning
    return TokenPrices(**values)


def _tier(spec: Mapping[str, Any], key: str, tier: str | None, inclusive: bool) -> TierPrices:
    """One service tier's base prices and context tiers (``tier`` None: the standard one)."""
    suffix = f"_{tier}" if tier else ""
    standard = {f: (_decimal(spec[f], f"{key}.{f}") if spec.get(f) is not None else None) for f in _TIERED_FIELDS}
    base = _rates(spec, suffix, standard, key) if tier else standard
    reasoning = spec.get("output_cost_per_reasoning_token")
    reasoning_price = _decimal(reasoning, f"{key}.output_cost_per_reasoning_token") if reasoning is not None else None
    thresholds: dict[int, str] = {}
    for name, value in spec.items():
        match = _ABOVE.match(name)
        if match and value is not None and match.group(3) in (None, tier):
            tokens = int(match.group(1)) * (1000 if match.group(2) else 1)
            thresholds[tokens] = f"{match.group(1)}{match.group(2)}"
    above: list[tuple[int, TokenPrices]] = []
    current = base
    for tokens in sorted(thresholds):
        label = thresholds[tokens]
        current = _rates_above(spec, label, suffix, current, key)
        above.append((tokens, _token_prices(current, reasoning_price)))
    return TierPrices(_token_prices(base, reasoning_price), tuple(above), inclusive)


def _rates_above(
    spec: Mapping[str, Any], label: str, suffix: str, current: Mapping[str, Decimal | None], key: str
) -> dict[str, Decimal | None]:
    """Rates once the prompt exceeds ``label`` tokens: the tier's own, else the standard tier's, else
    what applied below the threshold."""
    out: dict[str, Decimal | None] = {}
    for source_field in _TIERED_FIELDS:
        name = f"{source_field}_above_{label}_tokens"
        value = spec.get(name + suffix) if suffix else None
        if value is None:
            value = spec.get(name)
        out[source_field] = _decimal(value, f"{key}.{name}") if value is not None else current[source_field]
    return out


def parse_litellm_price_map(text: str | bytes, effective_from: datetime) -> list[PriceEntry]:
    """Entries for every model of LiteLLM's ``model_prices_and_context_window.json``
    that has per-token input and output prices; others (images, audio per
    second, the ``sample_spec`` example) are skipped.

    The provider is ``litellm_provider``; a model key that starts with
    ``provider/`` has that prefix removed, so events name models as the
    provider does. Context tiers (``*_above_200k_tokens``) and service tiers
    (``*_priority``, ``*_flex``, and their context tiers) are kept, resolved the
    way LiteLLM's cost calculator resolves them; a model priced by rules the
    catalogue does not hold (``tiered_pricing`` tables, off-peak hours) is
    marked inexact, so the cost the proxy reports for it wins."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise PriceFileError("$", f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PriceFileError("$", "expected an object of models")
    entries: list[PriceEntry] = []
    for key, spec in data.items():
        if key == "sample_spec" or not isinstance(spec, dict):
            continue
        provider = spec.get("litellm_provider")
        if not isinstance(provider, str) or "input_cost_per_token" not in spec or "output_cost_per_token" not in spec:
            continue
        if spec.get("input_cost_per_token") is None or spec.get("output_cost_per_token") is None:
            continue
        model = key[len(provider) + 1 :] if key.startswith(provider + "/") else key
        inclusive = provider in _INCLUSIVE_PROVIDERS
        standard = _tier(spec, key, None, inclusive)
        tiers = tuple(
            (tier, _tier(spec, key, tier, inclusive))
            for tier in _SERVICE_TIERS
            if any(spec.get(f"{f}_{tier}") is not None for f in _TIERED_FIELDS)
        )
        exact = not any(spec.get(rule) for rule in _NOT_MODELLED)
        entries.append(
            PriceEntry(provider, model, effective_from, standard.base, standard.above, tiers, inclusive, exact)
        )
    return entries


class _DecimalLoader(yaml.SafeLoader):
    """Safe YAML whose floats are Decimal, built from the literal text."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    return Decimal(text)


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def _datetime(value: Any, where: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise PriceFileError(where, f"not an ISO 8601 timestamp: {value!r}") from None
    if not isinstance(value, datetime):
        raise PriceFileError(where, "expected a timestamp such as 2024-08-06T00:00:00Z")
    if value.tzinfo is None:
        raise PriceFileError(where, "the timestamp needs a time zone (for example a trailing Z)")
    return value


def _text(spec: Mapping[str, Any], name: str, where: str) -> str:
    value = spec.get(name)
    if not isinstance(value, str) or not value:
        raise PriceFileError(f"{where}.{name}", "required text is missing")
    return value


def _policy(doc: Mapping[str, Any], catalogue: PriceCatalogue) -> None:
    if "unpriced_policy" in doc:
        try:
            catalogue.unpriced_policy = UnpricedPolicy(doc["unpriced_policy"])
        except ValueError:
            raise PriceFileError("unpriced_policy", "must be one of reject, zero, fallback") from None
    if "fallback" in doc:
        spec = doc["fallback"]
        if not isinstance(spec, dict):
            raise PriceFileError("fallback", "expected {provider, model}")
        catalogue.fallback = (_text(spec, "provider", "fallback"), _text(spec, "model", "fallback"))
    if catalogue.unpriced_policy is UnpricedPolicy.FALLBACK and catalogue.fallback is None:
        raise PriceFileError("fallback", "the fallback policy needs a fallback provider and model")


def _entry(spec: Any, where: str) -> PriceEntry:
    if not isinstance(spec, dict):
        raise PriceFileError(where, "expected a mapping")
    unit = spec.get("unit", "per_token")
    if unit not in ("per_token", "per_million_tokens"):
        raise PriceFileError(f"{where}.unit", "must be per_token or per_million_tokens")
    values: dict[str, Decimal] = {}
    for token_type in ("input", "output", "cache_read", "cache_write", "reasoning"):
        if spec.get(token_type) is not None:
            amount = _decimal(spec[token_type], f"{where}.{token_type}")
            values[token_type] = amount / _PER_MILLION if unit == "per_million_tokens" else amount
    for required in ("input", "output"):
        if required not in values:
            raise PriceFileError(f"{where}.{required}", "required price is missing")
    return PriceEntry(
        provider=_text(spec, "provider", where),
        model=_text(spec, "model", where),
        effective_from=_datetime(spec.get("effective_from"), f"{where}.effective_from"),
        prices=TokenPrices(**values),
    )


def load_overrides(text: str, base: PriceCatalogue | None = None) -> PriceCatalogue:
    """Apply a YAML overrides document on top of ``base`` (or an empty catalogue)."""
    try:
        doc = yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise PriceFileError("$", f"malformed YAML: {exc}") from None
    doc = doc or {}
    if not isinstance(doc, dict):
        raise PriceFileError("$", "expected a mapping with prices, discounts and unpriced_policy")
    unknown = set(doc) - {"prices", "discounts", "unpriced_policy", "fallback"}
    if unknown:
        raise PriceFileError(f"$.{sorted(unknown)[0]}", "unknown key")
    catalogue = base if base is not None else PriceCatalogue()
    _policy(doc, catalogue)
    for org, discount in (doc.get("discounts") or {}).items():
        catalogue.set_discount(str(org), _decimal(discount, f"discounts.{org}"))
    for i, spec in enumerate(doc.get("prices") or []):
        catalogue.add(_entry(spec, f"prices[{i}]"))
    return catalogue
