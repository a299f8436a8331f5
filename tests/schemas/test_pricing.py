from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    PriceCatalogue,
    PriceEntry,
    PricingError,
    RatingSource,
    TokenPrices,
    UnpricedModelError,
    UnpricedPolicy,
    UsageEvent,
    rate,
)
from schemas.pricing import TierPrices

T0 = datetime(2024, 1, 1, tzinfo=UTC)
JUNE = datetime(2024, 6, 1, tzinfo=UTC)
M = Decimal(1_000_000)

GPT = TokenPrices(
    input=Decimal("2.50") / M,
    output=Decimal("10.00") / M,
    cache_read=Decimal("1.25") / M,
    cache_write=Decimal("3.75") / M,
    reasoning=Decimal("12.00") / M,
)


def event(
    at: datetime = JUNE, org: str = "acme", model: str = "gpt-4o", provider: str = "openai", **fields: Any
) -> UsageEvent:
    return UsageEvent(
        event_id="e1",
        occurred_at=at,
        org_id=org,
        user_id="u1",
        feature="chat",
        provider=provider,
        model=model,
        **fields,
    )


@pytest.fixture
def catalogue() -> PriceCatalogue:
    return PriceCatalogue.of([PriceEntry("openai", "gpt-4o", T0, GPT)])


@pytest.mark.parametrize(
    ("tokens", "expected_nanos"),
    [
        ({"input_tokens": 1000}, 2_500_000),
        ({"output_tokens": 500}, 5_000_000),
        ({"cache_read_tokens": 200}, 250_000),
        ({"cache_write_tokens": 100}, 375_000),
        ({"reasoning_tokens": 50}, 600_000),
        (
            {
                "input_tokens": 1000,
                "output_tokens": 500,
                "cache_read_tokens": 200,
                "cache_write_tokens": 100,
                "reasoning_tokens": 50,
            },
            8_725_000,
        ),
        ({}, 0),
    ],
)
def test_every_token_type_is_rated(catalogue: PriceCatalogue, tokens: dict[str, int], expected_nanos: int) -> None:
    rating = rate(event(**tokens), catalogue)
    assert rating.cost_nanos == expected_nanos
    assert rating.source is RatingSource.CATALOGUE
    assert not rating.flagged


def test_missing_prices_default_to_input_and_output() -> None:
    prices = TokenPrices(input=Decimal("0.000001"), output=Decimal("0.000004"))
    catalogue = PriceCatalogue.of([PriceEntry("openai", "gpt-4o", T0, prices)])
    rating = rate(event(cache_read_tokens=10, cache_write_tokens=10, reasoning_tokens=10), catalogue)
    assert rating.cost_nanos == 10 * 1_000 + 10 * 1_000 + 10 * 4_000


def test_effective_date_switch_is_exact_to_the_microsecond() -> None:
    new = TokenPrices(input=Decimal("5") / M, output=Decimal("20") / M)
    catalogue = PriceCatalogue.of([PriceEntry("openai", "gpt-4o", JUNE, new), PriceEntry("openai", "gpt-4o", T0, GPT)])
    assert rate(event(JUNE - timedelta(microseconds=1), input_tokens=1000), catalogue).cost_nanos == 2_500_000
    assert rate(event(JUNE, input_tokens=1000), catalogue).cost_nanos == 5_000_000
    assert rate(event(JUNE + timedelta(days=400), input_tokens=1000), catalogue).cost_nanos == 5_000_000
    before = rate(event(T0 - timedelta(seconds=1), input_tokens=1000), catalogue)
    assert before.source is RatingSource.UNPRICED and before.cost_nanos == 0


def test_same_start_replaces_the_entry(catalogue: PriceCatalogue) -> None:
    catalogue.add(PriceEntry("openai", "gpt-4o", T0, TokenPrices(input=Decimal("1") / M, output=Decimal(0))))
    assert len(catalogue) == 1
    assert rate(event(input_tokens=1000), catalogue).cost_nanos == 1_000_000


def test_org_discount(catalogue: PriceCatalogue) -> None:
    catalogue.set_discount("acme", Decimal("0.10"))
    full = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_read_tokens": 200,
        "cache_write_tokens": 100,
        "reasoning_tokens": 50,
    }
    assert rate(event(**full), catalogue).cost_nanos == 7_852_500
    assert rate(event(org="other", **full), catalogue).cost_nanos == 8_725_000
    with pytest.raises(PricingError):
        catalogue.set_discount("acme", Decimal("1"))
    with pytest.raises(PricingError):
        catalogue.set_discount("acme", 0.1)  # type: ignore[arg-type]


def test_rounding_happens_once_half_even() -> None:
    half = Decimal("0.0000000005")  # half a nano-USD per token
    catalogue = PriceCatalogue.of([PriceEntry("openai", "gpt-4o", T0, TokenPrices(input=half, output=half))])
    # Rounded per token type this would be 0 + 0; rounded once it is 1.
    assert rate(event(input_tokens=1, output_tokens=1), catalogue).cost_nanos == 1
    assert rate(event(input_tokens=1), catalogue).cost_nanos == 0  # 0.5 -> 0 (even)
    assert rate(event(input_tokens=3), catalogue).cost_nanos == 2  # 1.5 -> 2 (even)
    assert rate(event(input_tokens=5), catalogue).cost_nanos == 2  # 2.5 -> 2 (even)
    assert rate(event(input_tokens=7), catalogue).cost_nanos == 4  # 3.5 -> 4 (even)
    # A discount that leaves a fraction is rounded once, after the discount.
    catalogue.set_discount("acme", Decimal("0.5"))
    assert rate(event(input_tokens=6), catalogue).cost_nanos == 2  # 3 * 0.5 = 1.5 -> 2


def test_unpriced_policies(catalogue: PriceCatalogue) -> None:
    unknown = event(model="mystery-1", input_tokens=1000)
    zero = rate(unknown, catalogue)
    assert (zero.cost_nanos, zero.source, zero.flagged) == (0, RatingSource.UNPRICED, True)

    catalogue.unpriced_policy = UnpricedPolicy.REJECT
    with pytest.raises(UnpricedModelError, match="mystery-1"):
        rate(unknown, catalogue)

    fallback = PriceCatalogue.of(
        [PriceEntry("openai", "gpt-4o", T0, GPT)],
        unpriced_policy=UnpricedPolicy.FALLBACK,
        fallback=("openai", "gpt-4o"),
    )
    rated = rate(unknown, fallback)
    assert (rated.cost_nanos, rated.source) == (2_500_000, RatingSource.FALLBACK)
    with pytest.raises(PricingError, match="fallback"):
        PriceCatalogue(unpriced_policy=UnpricedPolicy.FALLBACK)


def test_proxy_cost_is_used_only_when_the_catalogue_has_no_price(catalogue: PriceCatalogue) -> None:
    assert rate(event(input_tokens=1000, cost_nanos=1), catalogue).cost_nanos == 2_500_000
    unpriced = event(model="mystery", input_tokens=1000, cost_nanos=777)
    assert (rate(unpriced, catalogue).cost_nanos, rate(unpriced, catalogue).source) == (
        777,
        RatingSource.PROXY,
    )


def test_bad_prices_are_refused() -> None:
    with pytest.raises(PricingError, match="input"):
        TokenPrices(input=Decimal(-1), output=Decimal(0))
    with pytest.raises(PricingError, match="output"):
        TokenPrices(input=Decimal(0), output=0.5)  # type: ignore[arg-type]
    with pytest.raises(PricingError, match="time zone"):
        PriceEntry("openai", "gpt-4o", datetime(2024, 1, 1), GPT)


def test_a_discount_applies_to_proxy_reported_costs_too(catalogue: PriceCatalogue) -> None:
    """The README promised a discount on every event; a proxy-reported cost skipped it."""
    catalogue.set_discount("acme", Decimal("0.25"))
    rated = rate(event(model="mystery", cost_nanos=1_000_003), catalogue)
    assert (rated.cost_nanos, rated.source) == (750_002, RatingSource.PROXY)  # 750,002.25 rounds half-even once
    assert rate(event(org="globex", model="mystery", cost_nanos=1_000_003), catalogue).cost_nanos == 1_000_003


LONG = PriceEntry(
    "gemini",
    "gemini-2.5-pro",
    T0,
    TokenPrices(Decimal("1.25") / M, Decimal("10") / M, cache_read=Decimal("0.125") / M),
    above=((200_000, TokenPrices(Decimal("2.5") / M, Decimal("15") / M, cache_read=Decimal("0.25") / M)),),
    service_tiers=(
        (
            "priority",
            TierPrices(
                TokenPrices(Decimal("2.25") / M, Decimal("18") / M),
                ((200_000, TokenPrices(Decimal("4.5") / M, Decimal("27") / M)),),
            ),
        ),
    ),
)


@pytest.mark.parametrize(
    ("tokens", "tier", "expected"),
    [
        ({"input_tokens": 200_000, "output_tokens": 1000}, None, 260_000_000),  # exactly the threshold: base
        ({"input_tokens": 200_001, "output_tokens": 1000}, None, 515_002_500),  # above it: every token at the tier
        ({"input_tokens": 190_000, "cache_read_tokens": 20_000, "output_tokens": 0}, None, 480_000_000),
        ({"input_tokens": 1000, "output_tokens": 1000}, "priority", 20_250_000),
        ({"input_tokens": 1000, "output_tokens": 1000}, "fast", 20_250_000),  # LiteLLM bills fast as priority
        ({"input_tokens": 300_000, "output_tokens": 1000}, "priority", 1_377_000_000),
        ({"input_tokens": 1000, "output_tokens": 1000}, "flex", 11_250_000),  # no flex prices here: standard
    ],
)
def test_context_and_service_tiers(tokens: dict[str, int], tier: str | None, expected: int) -> None:
    """Long-context and service-tier prices were ignored: a 300k-token prompt was billed at the base rate."""
    ev = event(model="gemini-2.5-pro", provider="gemini", service_tier=tier, **tokens)
    assert rate(ev, PriceCatalogue.of([LONG])).cost_nanos == expected


def test_an_inexact_entry_yields_to_the_proxy_cost() -> None:
    """A model priced by rules the catalogue does not hold (tiered tables, off-peak hours): the proxy's cost wins."""
    inexact = PriceEntry("openai", "gpt-4o", T0, GPT, exact=False)
    catalogue = PriceCatalogue.of([inexact])
    with_cost = event(input_tokens=1000, cost_nanos=3_000_000)
    assert (rate(with_cost, catalogue).cost_nanos, rate(with_cost, catalogue).source) == (3_000_000, RatingSource.PROXY)
    without = event(input_tokens=1000)
    assert (rate(without, catalogue).cost_nanos, rate(without, catalogue).source) == (2_500_000, RatingSource.CATALOGUE)


_PRICE = st.decimals(min_value=0, max_value=Decimal("0.001"), places=18, allow_nan=False, allow_infinity=False)
_COUNT = st.integers(min_value=0, max_value=2_000_000)


@given(
    prices=st.tuples(_PRICE, _PRICE, _PRICE | st.none(), _PRICE | st.none(), _PRICE | st.none()),
    counts=st.tuples(_COUNT, _COUNT, _COUNT, _COUNT, _COUNT),
    discount=st.decimals(min_value=0, max_value=Decimal("0.99"), places=4),
)
def test_a_cost_splits_by_token_type_exactly(
    prices: tuple[Decimal | None, ...], counts: tuple[int, ...], discount: Decimal
) -> None:
    token_prices = TokenPrices(*prices)  # type: ignore[arg-type]
    catalogue = PriceCatalogue.of([PriceEntry("openai", "gpt-4o", T0, token_prices)], discounts={"acme": discount})
    tokens = dict(zip(("input", "output", "cache_read", "cache_write", "reasoning"), counts, strict=True))
    rating = rate(event(**{f"{k}_tokens": v for k, v in tokens.items()}), catalogue)
    assert rating.split is not None
    assert sum(rating.split.cost_nanos) == rating.cost_nanos  # exact, whatever the prices
    assert rating.split.unit_prices == token_prices.per_type() and rating.split.discount == discount
    for count, price, part in zip(counts, rating.split.unit_prices, rating.split.cost_nanos, strict=True):
        exact = count * price * (1 - discount) * 1_000_000_000
        assert exact - 1 < part < exact + 1  # each part within a nano-USD of its exact amount
    listed = sum((c * p for c, p in zip(counts, token_prices.per_type(), strict=True)), Decimal(0))
    assert rating.list_nanos == round(listed * 1_000_000_000)
    assert rate(event(**{f"{k}_tokens": v for k, v in tokens.items()}), catalogue) == rating  # deterministic


def test_the_split_places_the_left_over_nanos_on_the_largest_fractions() -> None:
    third = Decimal(1) / 3 / 1_000_000_000  # a third of a nano-USD per token
    prices = TokenPrices(input=third, output=third * 2)
    catalogue = PriceCatalogue.of([PriceEntry("openai", "gpt-4o", T0, prices)])
    rating = rate(event(input_tokens=1, output_tokens=1), catalogue)  # 0.333 + 0.667 = 1 nano-USD
    assert rating.cost_nanos == 1 and rating.split is not None
    assert rating.split.cost_nanos == (0, 1, 0, 0, 0)
    tie = rate(
        event(input_tokens=3, output_tokens=0, cache_read_tokens=0),
        PriceCatalogue.of(
            [PriceEntry("openai", "gpt-4o", T0, TokenPrices(input=Decimal("0.5") / 1_000_000_000, output=third))]
        ),
    )
    assert tie.cost_nanos == 2 and tie.split is not None and tie.split.cost_nanos == (2, 0, 0, 0, 0)


def test_a_proxy_cost_has_no_split_and_lists_the_proxys_figure() -> None:
    catalogue = PriceCatalogue(discounts={"acme": Decimal("0.25")})
    rating = rate(event(model="unknown", cost_nanos=1_000, input_tokens=5), catalogue)
    assert (rating.cost_nanos, rating.list_nanos, rating.split) == (750, 1_000, None)
