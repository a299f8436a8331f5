"""The price catalogue and the one rating rule.

A price is a ``Decimal`` USD amount per token for each token type, for one
provider and model, effective from an instant on: the entry that applies to
an event is the latest one whose ``effective_from`` is at or before the
event's ``occurred_at``. An org may have a discount (a fraction off).

Rating multiplies exactly in ``Decimal`` and rounds once, half-even, to
nano-USD (:func:`schemas.money.round_nanos`).

An entry may price long requests and service tiers differently, as
providers do: ``above`` holds context tiers (when the prompt, that is input +
cache read + cache write tokens, exceeds a threshold, the whole request takes
that tier's prices), and ``service_tiers`` holds the prices of tiers such as
``priority`` or ``flex`` (each with context tiers of its own). An event's
``service_tier`` picks one; a tier the entry does not price bills at the
standard prices, as LiteLLM does.

Which price wins, in order: the catalogue's entry for the event's provider
and model (unless the entry is marked inexact, because its source prices the
model in ways the catalogue does not model, and the proxy reported a cost);
else the cost the proxy already reported on the event; else the
unpriced-model policy (``reject``, ``zero`` or ``fallback``). Anything but
the catalogue is flagged on the :class:`Rating` so that unpriced spend is
visible. An org's discount applies to every cost, the proxy's included.

A cost from the catalogue is also split by token type (:class:`CostSplit`): each type's exact
discounted amount is floored to nano-USD, and the nano-USD the flooring left (the event's rounded cost
minus the sum of the floors, at most one per type) go one each to the types with the largest
fractions, ties to the earlier type in :data:`TOKEN_TYPES`. So the parts sum to the event's cost
exactly and the same event always splits the same way. A cost the proxy reported has no split: its
prices are unknown.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from schemas.errors import SpendstreamError
from schemas.events import UsageEvent
from schemas.money import NANOS_PER_USD, NanoUSD, round_nanos

__all__ = [
    "SERVICE_TIER_ALIASES",
    "TOKEN_TYPES",
    "CostSplit",
    "PriceCatalogue",
    "PriceEntry",
    "PricingError",
    "Rating",
    "RatingSource",
    "TierPrices",
    "TokenPrices",
    "UnpricedModelError",
    "UnpricedPolicy",
    "rate",
]

_ZERO = Decimal(0)

TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
"""The token types an event counts, in the order of every per-type tuple (and the ``*_tokens`` fields)."""


class PricingError(SpendstreamError):
    """A price, discount or policy that cannot be used; ``field`` names it."""


class UnpricedModelError(PricingError):
    """No price for an event's model and the policy is ``reject``."""

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(f"{provider}/{model}", "no price in the catalogue and the unpriced policy is reject")
        self.provider = provider
        self.model = model


def _price(value: Decimal | None, name: str) -> Decimal | None:
    if value is None:
        return None
    if not isinstance(value, Decimal):
        raise PricingError(name, f"prices are Decimal USD per token, got {type(value).__name__}")
    if not value.is_finite() or value < 0:
        raise PricingError(name, f"a price must be a finite amount >= 0, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """USD per token for each token type. ``reasoning`` defaults to ``output``;
    ``cache_read`` and ``cache_write`` default to ``input``."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cache_read", "cache_write", "reasoning"):
            _price(getattr(self, name), name)

    def per_type(self) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        """The price of each of :data:`TOKEN_TYPES`, defaults filled in."""
        return (
            self.input,
            self.output,
            self.input if self.cache_read is None else self.cache_read,
            self.input if self.cache_write is None else self.cache_write,
            self.output if self.reasoning is None else self.reasoning,
        )


def token_counts(event: UsageEvent) -> tuple[int, int, int, int, int]:
    """An event's tokens of each of :data:`TOKEN_TYPES`."""
    return (
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.reasoning_tokens,
    )


SERVICE_TIER_ALIASES = {"fast": "priority"}
"""Service tier names that bill as another tier (LiteLLM's mapping)."""


@dataclass(frozen=True, slots=True)
class TierPrices:
    """The prices of one service tier: its base prices and its context tiers.

    ``above`` is ascending by threshold and each entry is complete (fields a source leaves out are
    already filled from the tier below), so the highest threshold the prompt exceeds decides."""

    base: TokenPrices
    above: tuple[tuple[int, TokenPrices], ...] = ()
    inclusive: bool = False  # a prompt of exactly the threshold already takes the higher tier

    def __post_init__(self) -> None:
        thresholds = [threshold for threshold, _ in self.above]
        if thresholds != sorted(set(thresholds)) or any(t < 0 for t in thresholds):
            raise PricingError("context_tiers", "distinct thresholds >= 0, in ascending order")

    def for_prompt(self, prompt_tokens: int) -> TokenPrices:
        return _for_prompt(self.base, self.above, self.inclusive, prompt_tokens)


def _for_prompt(
    base: TokenPrices, above: tuple[tuple[int, TokenPrices], ...], inclusive: bool, prompt_tokens: int
) -> TokenPrices:
    """The prices of a prompt this long: the highest context tier it exceeds (or reaches, when inclusive)."""
    chosen = base
    for threshold, prices in above:
        if prompt_tokens > threshold or (inclusive and prompt_tokens == threshold):
            chosen = prices
        else:
            break
    return chosen


@dataclass(frozen=True, slots=True)
class PriceEntry:
    provider: str
    model: str
    effective_from: datetime
    prices: TokenPrices
    above: tuple[tuple[int, TokenPrices], ...] = ()  # the standard tier's context tiers
    service_tiers: tuple[tuple[str, TierPrices], ...] = ()  # ("priority", ...), ("flex", ...)
    inclusive: bool = False  # thresholds are reached at equality (xAI), not only when exceeded
    exact: bool = True  # False: the source prices this model in ways not modelled here; a proxy cost wins

    def __post_init__(self) -> None:
        if self.effective_from.tzinfo is None:
            raise PricingError(f"{self.provider}/{self.model}.effective_from", "must carry a time zone")
        TierPrices(self.prices, self.above)  # validates the thresholds

    def prices_for(self, event: UsageEvent) -> TokenPrices:
        """The prices of this event's service tier and prompt length."""
        prompt = event.input_tokens + event.cache_read_tokens + event.cache_write_tokens
        tier = event.service_tier
        if tier:
            name = SERVICE_TIER_ALIASES.get(tier, tier)
            for tier_name, prices in self.service_tiers:
                if tier_name == name:
                    return prices.for_prompt(prompt)
        return _for_prompt(self.prices, self.above, self.inclusive, prompt)  # validated in __post_init__


class UnpricedPolicy(StrEnum):
    REJECT = "reject"  # dead-letter the event
    ZERO = "zero"  # count its tokens at cost 0, flagged (the default)
    FALLBACK = "fallback"  # rate it with a named provider/model's price, flagged


class RatingSource(StrEnum):
    CATALOGUE = "catalogue"
    PROXY = "proxy"
    FALLBACK = "fallback"
    UNPRICED = "unpriced"


@dataclass(frozen=True, slots=True)
class CostSplit:
    """A catalogue-rated cost by token type (in the order of :data:`TOKEN_TYPES`)."""

    cost_nanos: tuple[int, ...]  # after the discount; sums to the event's cost
    unit_prices: tuple[Decimal, ...]  # the catalogue's USD per token that applied
    discount: Decimal  # the org's fraction off


@dataclass(frozen=True, slots=True)
class Rating:
    cost_nanos: NanoUSD
    source: RatingSource
    list_nanos: NanoUSD | None = None  # before the org's discount (None: as cost_nanos)
    split: CostSplit | None = None  # None: a proxy's cost, or nothing to split

    @property
    def flagged(self) -> bool:
        """True when the cost did not come from the catalogue."""
        return self.source is not RatingSource.CATALOGUE


@dataclass(slots=True)
class PriceCatalogue:
    """Effective-dated prices per (provider, model), plus per-org discounts and the unpriced policy."""

    unpriced_policy: UnpricedPolicy = UnpricedPolicy.ZERO
    fallback: tuple[str, str] | None = None
    discounts: dict[str, Decimal] = field(default_factory=dict)
    _entries: dict[tuple[str, str], list[PriceEntry]] = field(default_factory=dict)
    _starts: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.unpriced_policy is UnpricedPolicy.FALLBACK and self.fallback is None:
            raise PricingError("unpriced.fallback", "policy 'fallback' needs a fallback provider and model")
        for org, discount in self.discounts.items():
            self.set_discount(org, discount)

    @classmethod
    def of(cls, entries: Iterable[PriceEntry], **kwargs: object) -> PriceCatalogue:
        catalogue = cls(**kwargs)  # type: ignore[arg-type]
        catalogue.add_all(entries)
        return catalogue

    def add(self, entry: PriceEntry) -> None:
        """Add an entry; an entry for the same model and start replaces the old one."""
        key = (entry.provider, entry.model)
        entries = self._entries.setdefault(key, [])
        starts = self._starts.setdefault(key, [])
        index = bisect.bisect_left(starts, entry.effective_from)
        if index < len(starts) and starts[index] == entry.effective_from:
            entries[index] = entry
        else:
            starts.insert(index, entry.effective_from)
            entries.insert(index, entry)

    def add_all(self, entries: Iterable[PriceEntry]) -> None:
        for entry in entries:
            self.add(entry)

    def set_discount(self, org_id: str, discount: Decimal) -> None:
        if not isinstance(discount, Decimal) or not (_ZERO <= discount < 1):
            raise PricingError(f"discounts.{org_id}", f"must be a Decimal in [0, 1), got {discount!r}")
        self.discounts[org_id] = discount

    def lookup(self, provider: str, model: str, at: datetime) -> PriceEntry | None:
        """The entry in force at ``at``, or None."""
        key = (provider, model)
        starts = self._starts.get(key)
        if not starts:
            return None
        index = bisect.bisect_right(starts, at) - 1
        return self._entries[key][index] if index >= 0 else None

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def models(self) -> Mapping[tuple[str, str], list[PriceEntry]]:
        return self._entries


def _discounted(amount: Decimal, event: UsageEvent, catalogue: PriceCatalogue) -> Decimal:
    discount = catalogue.discounts.get(event.org_id)
    return amount * (1 - discount) if discount else amount


def split_cost(total_nanos: int, exact_usd: tuple[Decimal, ...]) -> tuple[int, ...]:
    """``total_nanos`` shared by the exact USD ``exact_usd`` of each part: each part's floor in nano-USD,
    then what is left, one nano-USD a part, to the largest fractions (ties to the earlier part)."""
    scaled = [amount * NANOS_PER_USD for amount in exact_usd]
    parts = [int(amount) for amount in scaled]  # floor: amounts are >= 0
    left = total_nanos - sum(parts)
    order = sorted(range(len(parts)), key=lambda i: (-(scaled[i] - parts[i]), i))
    while left > 0:  # at most one round: the fractions sum to less than one per part
        for i in order[:left]:
            parts[i] += 1
        left -= min(left, len(order))
    for i in reversed(order):  # only if Decimal's precision left the sum above the total
        while left < 0 and parts[i] > 0:
            parts[i] -= 1
            left += 1
    return tuple(parts)


def rate(event: UsageEvent, catalogue: PriceCatalogue) -> Rating:
    """Price one event. Raises :class:`UnpricedModelError` only under the ``reject`` policy."""
    entry = catalogue.lookup(event.provider, event.model, event.occurred_at)
    if entry is not None and (entry.exact or event.cost_nanos is None):
        source = RatingSource.CATALOGUE
    elif event.cost_nanos is not None:
        amount = _discounted(Decimal(event.cost_nanos) / NANOS_PER_USD, event, catalogue)
        return Rating(round_nanos(amount), RatingSource.PROXY, NanoUSD(event.cost_nanos))
    elif catalogue.unpriced_policy is UnpricedPolicy.REJECT:
        raise UnpricedModelError(event.provider, event.model)
    elif catalogue.unpriced_policy is UnpricedPolicy.ZERO:
        return Rating(cost_nanos=NanoUSD(0), source=RatingSource.UNPRICED)
    else:
        assert catalogue.fallback is not None  # checked in __post_init__
        entry = catalogue.lookup(*catalogue.fallback, event.occurred_at)
        if entry is None:
            return Rating(cost_nanos=NanoUSD(0), source=RatingSource.UNPRICED)
        source = RatingSource.FALLBACK
    prices = entry.prices_for(event).per_type()
    list_usd = tuple(q * p for q, p in zip(token_counts(event), prices, strict=True))
    listed = sum(list_usd, _ZERO)
    discount = catalogue.discounts.get(event.org_id, _ZERO)
    cost = round_nanos(_discounted(listed, event, catalogue))
    parts = split_cost(cost, tuple(_discounted(amount, event, catalogue) for amount in list_usd))
    return Rating(cost, source, round_nanos(listed), CostSplit(parts, prices, discount))
