"""spendstream's data model: events, money, prices and budgets. Pure: no I/O.

Errors, all ``ValueError`` subclasses so that bad input is never mistaken for
a bug:

* :class:`MoneyError` - an amount that cannot be money (a float, a fraction of a nano-USD);
* :class:`PricingError` - a price, discount or policy that cannot be used;

  * :class:`UnpricedModelError` - no price and the policy is ``reject``;
  * :class:`~schemas.price_sources.PriceFileError` - a bad entry in a price file;
* :class:`BudgetError` - a budget that cannot be applied.

A rejected event is not an exception but an :class:`EventError` value.
"""

from schemas.budgets import (
    Budget,
    BudgetError,
    BudgetMode,
    Channel,
    Period,
    ScopeKind,
    period_bounds,
    period_key,
)
from schemas.events import EventError, UsageEvent, decode_event, decode_events, encode_event
from schemas.money import (
    NANOS_PER_USD,
    MoneyError,
    NanoUSD,
    format_usd,
    nanos,
    parse_usd,
    round_nanos,
    to_usd,
)
from schemas.pricing import (
    PriceCatalogue,
    PriceEntry,
    PricingError,
    Rating,
    RatingSource,
    TokenPrices,
    UnpricedModelError,
    UnpricedPolicy,
    rate,
)

__all__ = [
    "NANOS_PER_USD",
    "Budget",
    "BudgetError",
    "BudgetMode",
    "Channel",
    "EventError",
    "MoneyError",
    "NanoUSD",
    "Period",
    "PriceCatalogue",
    "PriceEntry",
    "PricingError",
    "Rating",
    "RatingSource",
    "ScopeKind",
    "TokenPrices",
    "UnpricedModelError",
    "UnpricedPolicy",
    "UsageEvent",
    "decode_event",
    "decode_events",
    "encode_event",
    "format_usd",
    "nanos",
    "parse_usd",
    "period_bounds",
    "period_key",
    "rate",
    "round_nanos",
    "to_usd",
]
