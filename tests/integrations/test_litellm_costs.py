"""Our rating of what the LiteLLM hook reports equals LiteLLM's own cost, case by case.

In LiteLLM's environment (.venv-litellm), each case's usage goes through LiteLLM's cost calculator and
through the hook's own token mapping; here, the events those tokens make are rated with the catalogue
parsed from the same price entries. Cache writes, cache reads, reasoning, long-context tiers (and xAI's
inclusive threshold) and service tiers each have a case."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from admin.cli import HISTORY_START
from schemas.events import UsageEvent
from schemas.price_sources import parse_litellm_price_map
from schemas.pricing import TOKEN_TYPES, PriceCatalogue, rate
from tests.deployment import ROOT

pytestmark = pytest.mark.stack

# key in LiteLLM's map, prompt tokens (cache included), cached, cache written, completion (reasoning included),
# reasoning, service tier
CASES = [
    ("gpt-4o", 1200, 800, 0, 300, 0, None),
    ("gpt-4o", 1200, 0, 0, 300, 0, "priority"),
    ("o3-mini", 5000, 1000, 0, 4000, 3000, None),
    ("claude-sonnet-4-5-20250929", 215_000, 10_000, 5000, 1000, 0, None),
    ("claude-sonnet-4-5-20250929", 5000, 0, 4000, 100, 0, None),
    ("gemini/gemini-2.5-pro", 150_000, 20_000, 0, 2000, 500, None),
    ("gemini/gemini-2.5-pro", 250_000, 20_000, 0, 2000, 500, None),
    ("gemini/gemini-2.5-pro", 250_000, 0, 0, 2000, 0, "priority"),
    ("gemini/gemini-2.5-pro", 250_000, 0, 0, 2000, 0, "flex"),
    ("gpt-5", 10_000, 2000, 0, 3000, 1000, "flex"),
    ("xai/grok-4.3", 200_000, 0, 0, 10, 0, None),
    ("xai/grok-4.3", 199_999, 0, 0, 10, 0, None),
]

SCRIPT = """
import json, sys
import litellm
from litellm import Usage
from integrations.litellm_mapping import tokens_of

out = {"map": {}, "results": []}
for key, prompt, cached, written, completion, reasoning, tier in json.load(sys.stdin):
    extra = {"cache_creation_input_tokens": written, "cache_read_input_tokens": cached} if written else {}
    usage = Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        prompt_tokens_details={"cached_tokens": cached},
        completion_tokens_details={"reasoning_tokens": reasoning},
        **extra,
    )
    spec = litellm.model_cost[key]
    model = key.split("/", 1)[1] if key.startswith(spec["litellm_provider"] + "/") else key
    provider = spec["litellm_provider"]
    p, c = litellm.cost_per_token(model=model, custom_llm_provider=provider, usage_object=usage, service_tier=tier)
    t = tokens_of(usage)
    out["map"][key] = spec
    counts = [t.input, t.output, t.cache_read, t.cache_write, t.reasoning]
    out["results"].append({"cost": repr(p + c), "tokens": counts})
print(json.dumps(out))
"""


def _event(provider: str, model: str, tier: str | None, counts: Sequence[int]) -> UsageEvent:
    """An event of acme with these tokens of each type (input, output, cache read, cache write, reasoning)."""
    tokens = dict(zip(TOKEN_TYPES, counts, strict=True))
    return UsageEvent(
        event_id="e",
        occurred_at=HISTORY_START.replace(year=2026),
        org_id="acme",
        user_id="u",
        feature="f",
        provider=provider,
        model=model,
        service_tier=tier,
        **{f"{name}_tokens": count for name, count in tokens.items()},  # type: ignore[arg-type]
    )


def test_our_rating_of_the_hooks_events_equals_litellms_cost(litellm_bin: Path) -> None:
    python = litellm_bin.parent / "python"
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [str(python), "-c", SCRIPT],
        input=json.dumps(CASES),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    catalogue = PriceCatalogue.of(parse_litellm_price_map(json.dumps(out["map"]), HISTORY_START))
    for case, got in zip(CASES, out["results"], strict=True):
        key, *_, tier = case
        provider = out["map"][key]["litellm_provider"]
        model = key.split("/", 1)[1] if key.startswith(provider + "/") else key
        rating = rate(_event(provider, model, tier, got["tokens"]), catalogue)
        theirs = Decimal(got["cost"]) * 1_000_000_000
        assert rating.source.value == "catalogue", case
        assert abs(Decimal(rating.cost_nanos) - theirs) <= 1, (case, rating.cost_nanos, theirs)


def test_every_priced_model_splits_its_cost_by_token_type_exactly(litellm_bin: Path) -> None:
    """Over LiteLLM's whole price map: each model, at several sizes (below and above its context tiers) and
    in each service tier, splits its cost into parts that sum to it to the nano-USD."""
    price_map = next(
        litellm_bin.parent.parent.glob("lib/python3*/site-packages/litellm/model_prices_and_context_window_backup.json")
    )
    catalogue = PriceCatalogue.of(
        parse_litellm_price_map(price_map.read_text(), HISTORY_START), discounts={"acme": Decimal("0.137")}
    )
    sizes = ((1, 1, 0, 0, 0), (1237, 311, 97, 13, 5), (250_001, 40_003, 7_777, 1_001, 999))
    rated = 0
    for (provider, model), entries in catalogue.models().items():
        for tier in (None, *(name for name, _ in entries[-1].service_tiers)):
            for counts in sizes:
                rating = rate(_event(provider, model, tier, counts), catalogue)
                assert rating.split is not None, (provider, model)
                assert sum(rating.split.cost_nanos) == rating.cost_nanos, (provider, model, tier, counts)
                rated += 1
    assert rated > 3000
