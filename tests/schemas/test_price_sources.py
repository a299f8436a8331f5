import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from schemas import RatingSource, UnpricedPolicy, UsageEvent, rate
from schemas.price_sources import PriceFileError, load_overrides, parse_litellm_price_map

AT = datetime(2024, 1, 1, tzinfo=UTC)

LITELLM = """{
  "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "x"},
  "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
             "cache_read_input_token_cost": 1.25e-06, "litellm_provider": "openai", "mode": "chat"},
  "anthropic/claude-3-5-sonnet-20240620": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
             "cache_creation_input_token_cost": 3.75e-06, "cache_read_input_token_cost": 3e-07,
             "litellm_provider": "anthropic"},
  "o1": {"input_cost_per_token": 0.000015, "output_cost_per_token": 0.00006,
         "output_cost_per_reasoning_token": 0.00006, "litellm_provider": "openai"},
  "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image_generation"},
  "free-model": {"input_cost_per_token": 0, "output_cost_per_token": 0, "litellm_provider": "local"}
}"""


def ev(provider: str, model: str, **tokens: int) -> UsageEvent:
    return UsageEvent(
        event_id="e",
        occurred_at=datetime(2024, 6, 1, tzinfo=UTC),
        org_id="o",
        user_id="u",
        feature="f",
        provider=provider,
        model=model,
        **tokens,
    )  # type: ignore[arg-type]


def test_litellm_map_is_read_exactly_without_floats() -> None:
    entries = {(e.provider, e.model): e for e in parse_litellm_price_map(LITELLM, AT)}
    assert set(entries) == {
        ("openai", "gpt-4o"),
        ("anthropic", "claude-3-5-sonnet-20240620"),
        ("openai", "o1"),
        ("local", "free-model"),
    }
    gpt = entries[("openai", "gpt-4o")].prices
    assert gpt.input == Decimal("0.0000025") and isinstance(gpt.input, Decimal)
    assert gpt.cache_read == Decimal("0.00000125")
    claude = entries[("anthropic", "claude-3-5-sonnet-20240620")].prices
    assert claude.cache_write == Decimal("0.00000375")
    assert entries[("openai", "o1")].prices.reasoning == Decimal("0.00006")


def test_litellm_map_errors_name_the_entry() -> None:
    with pytest.raises(PriceFileError, match="malformed JSON"):
        parse_litellm_price_map("{", AT)
    bad = json.dumps({"m": {"input_cost_per_token": "x", "output_cost_per_token": 1, "litellm_provider": "p"}})
    with pytest.raises(PriceFileError, match=r"m\.input_cost_per_token"):
        parse_litellm_price_map(bad, AT)


def test_overrides_on_top_of_the_map() -> None:
    from schemas import PriceCatalogue

    base = PriceCatalogue.of(parse_litellm_price_map(LITELLM, AT))
    catalogue = load_overrides(
        """
unpriced_policy: fallback
fallback: {provider: openai, model: gpt-4o}
discounts:
  acme: 0.10
prices:
  - provider: openai
    model: gpt-4o
    effective_from: 2024-05-01T00:00:00Z
    unit: per_million_tokens
    input: 2.00
    output: 8.00
  - provider: internal
    model: llama-70b
    effective_from: "2024-01-01T00:00:00+00:00"
    input: 0.0000001
    output: 0.0000002
""",
        base,
    )
    assert catalogue.unpriced_policy is UnpricedPolicy.FALLBACK
    assert catalogue.discounts["acme"] == Decimal("0.10")
    assert rate(ev("openai", "gpt-4o", input_tokens=1_000_000), catalogue).cost_nanos == 2_000_000_000
    assert rate(ev("internal", "llama-70b", output_tokens=10), catalogue).cost_nanos == 2_000
    fallback = rate(ev("openai", "unknown", input_tokens=1000), catalogue)
    assert (fallback.cost_nanos, fallback.source) == (2_000_000, RatingSource.FALLBACK)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "prices: [{provider: p, model: m, effective_from: 2024-01-01T00:00:00Z, output: 1}]",
            "prices[0].input",
        ),
        (
            "prices: [{provider: p, model: m, effective_from: 2024-01-01T00:00:00, input: 1, output: 1}]",
            "prices[0].effective_from",
        ),
        (
            "prices: [{provider: p, model: m, effective_from: 2024-01-01T00:00:00Z, input: -1, output: 1}]",
            "prices[0].input",
        ),
        (
            "prices: [{model: m, effective_from: 2024-01-01T00:00:00Z, input: 1, output: 1}]",
            "prices[0].provider",
        ),
        (
            "prices: [{provider: p, model: m, effective_from: 2024-01-01T00:00:00Z, input: 1, output: 1, unit: x}]",
            "prices[0].unit",
        ),
        ("unpriced_policy: maybe", "unpriced_policy"),
        ("unpriced_policy: fallback", "fallback"),
        ("discounts: {acme: abc}", "discounts.acme"),
        ("colour: blue", "$.colour"),
        ("[1, 2]", "$"),
        ("prices: [", "$"),
    ],
)
def test_override_errors_name_the_field(text: str, where: str) -> None:
    with pytest.raises(PriceFileError) as info:
        load_overrides(text)
    assert info.value.field == where
