from datetime import UTC, datetime
from decimal import Decimal

from enforcement.estimator import Estimator, OutputSizes
from schemas import PriceCatalogue, PriceEntry, TokenPrices, UnpricedPolicy

AT = datetime(2024, 6, 1, tzinfo=UTC)
CATALOGUE = PriceCatalogue.of(
    [
        PriceEntry(
            "openai",
            "gpt-4o",
            datetime(2024, 1, 1, tzinfo=UTC),
            TokenPrices(input=Decimal("0.0000025"), output=Decimal("0.00001")),
        )
    ]
)


def test_falls_back_to_max_tokens_until_it_has_learned() -> None:
    estimator = Estimator(CATALOGUE, OutputSizes(min_samples=20, percentile=0.9))
    assert estimator.estimate("openai", "gpt-4o", "chat", 1000, 4000, AT) == 1000 * 2_500 + 4000 * 10_000
    for tokens in range(1, 101):  # outputs 1..100 tokens
        estimator.outputs.observe("gpt-4o", "chat", tokens)
    assert estimator.output_tokens("gpt-4o", "chat", 4000) == 90
    assert estimator.estimate("openai", "gpt-4o", "chat", 1000, 4000, AT) == 1000 * 2_500 + 90 * 10_000
    assert estimator.output_tokens("gpt-4o", "chat", 50) == 50  # never above max_tokens
    assert estimator.output_tokens("gpt-4o", "search", None) == 4096  # other feature: not learned yet


def test_window_forgets_old_traffic() -> None:
    sizes = OutputSizes(window=10, percentile=1.0, min_samples=1)
    for tokens in [1000] * 10 + [10] * 10:
        sizes.observe("m", "f", tokens)
    assert sizes.expected("m", "f") == 10


def test_rounds_up_and_applies_discounts_and_fallbacks() -> None:
    tiny = PriceCatalogue.of(
        [PriceEntry("p", "m", datetime(2024, 1, 1, tzinfo=UTC), TokenPrices(Decimal("0.0000000001"), Decimal(0)))]
    )
    assert Estimator(tiny).estimate("p", "m", "f", 1, 0, AT) == 1  # 0.1 nano-USD rounds up
    assert Estimator(CATALOGUE).estimate("openai", "unknown", "f", 1000, 10, AT) is None  # unpriced, not free
    CATALOGUE.unpriced_policy, CATALOGUE.fallback = UnpricedPolicy.FALLBACK, ("openai", "gpt-4o")
    try:
        assert Estimator(CATALOGUE).estimate("openai", "unknown", "f", 1000, 0, AT) == 2_500_000
    finally:
        CATALOGUE.unpriced_policy, CATALOGUE.fallback = UnpricedPolicy.ZERO, None
