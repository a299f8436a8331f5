"""What the LiteLLM hook decides, without a proxy: identity from the key, disjoint tokens, the time in UTC."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from integrations.litellm_mapping import (
    Identity,
    IdentityError,
    KeyView,
    identity,
    occurred_at,
    read,
    request_tags,
    tokens_of,
    usage_event,
)
from schemas.allocation_tags import parse_tag_rules
from schemas.budgets import OrgConfig
from schemas.events import UsageEvent

ACME_KEY = KeyView("a" * 64, "acme", "eng", "ada", {}, {})
BARE_KEY = KeyView("b" * 64, None, None, None, {}, {})


def test_identity_comes_from_the_key_not_the_request() -> None:
    """The hook took org and department from the request's metadata and the user from its body."""
    who = identity(ACME_KEY, {"user": "somebody-else", "metadata": {"spendstream_feature": "search"}})
    assert who == Identity("acme", "eng", "ada", "search", "a" * 64)


@pytest.mark.parametrize(
    "metadata",
    [{"spendstream_org_id": "globex"}, {"spendstream_department_id": "sales"}, {"spendstream_user_id": "bob"}],
)
def test_a_request_naming_another_identity_is_refused(metadata: dict[str, str]) -> None:
    with pytest.raises(IdentityError) as info:
        identity(ACME_KEY, {"metadata": metadata})
    assert info.value.status == 403 and "its key spends as" in str(info.value)


def test_naming_the_keys_own_identity_is_accepted() -> None:
    who = identity(ACME_KEY, {"metadata": {"spendstream_org_id": "acme", "spendstream_department_id": "eng"}})
    assert (who.org_id, who.department_id) == ("acme", "eng")


def test_a_key_without_an_org_is_refused_unless_the_deployment_opts_in() -> None:
    with pytest.raises(IdentityError, match="carries no org"):
        identity(BARE_KEY, {"user": "ada"})
    who = identity(BARE_KEY, {"user": "ada"}, default_org="solo")
    assert (who.org_id, who.user_id) == ("solo", "key-bbbbbbbbbbbbbbbb")  # the key is the spender
    assert identity(BARE_KEY, {"user": "ada"}, default_org="solo", trust_request_user=True).user_id == "ada"


def test_key_metadata_set_by_the_admin_carries_org_department_and_a_pinned_feature() -> None:
    key = KeyView("c" * 64, None, None, "ada", {"spendstream_org_id": "acme", "spendstream_feature": "ide"}, {})
    assert identity(key, {}).feature == "ide"
    team_key = KeyView(
        "c" * 64, None, None, "ada", {}, {"spendstream_org_id": "acme", "spendstream_department_id": "x"}
    )
    assert (identity(team_key, {}).org_id, identity(team_key, {}).department_id) == ("acme", "x")
    with pytest.raises(IdentityError, match="pinned"):
        identity(key, {"metadata": {"spendstream_feature": "chat"}})


TAGGED = OrgConfig("acme", tags=parse_tag_rules(["project", "customer"]))
APOLLO_KEY = KeyView("d" * 64, "acme", "eng", "ada", {"project": "apollo"}, {"customer": "c-1"})
OPEN_KEY = KeyView("e" * 64, "acme", "eng", "bob", {}, {})


def test_tags_come_from_the_key_and_its_team_and_the_request_only_when_the_org_trusts_it() -> None:
    asks = {"user": "c-77", "metadata": {"project": "zeus", "customer": "c-9", "other": "x"}}
    assert request_tags(APOLLO_KEY, asks, TAGGED) == (("project", "apollo"), ("customer", "c-1"))
    assert request_tags(OPEN_KEY, asks, TAGGED) == ()  # a caller may not pick its project
    trusting = replace(TAGGED, trust_request_tags=True)
    assert request_tags(APOLLO_KEY, asks, trusting) == (("project", "apollo"), ("customer", "c-1"))  # the key pins
    assert request_tags(OPEN_KEY, asks, trusting) == (("project", "zeus"), ("customer", "c-9"))
    assert request_tags(OPEN_KEY, {"user": "c-77"}, trusting) == (("customer", "c-77"),)  # LiteLLM's end user
    assert request_tags(OPEN_KEY, {"metadata": {"project": "a b"}}, trusting) == ()  # not an id: left out
    assert request_tags(APOLLO_KEY, asks, None) == () == request_tags(APOLLO_KEY, asks, OrgConfig("acme"))


def test_the_event_carries_the_tags_the_reserve_checked() -> None:
    event = event_of(replace(identity(APOLLO_KEY, {}), tags=(("project", "apollo"),)), cost=None, cache_hit=False)
    assert event.metadata == {"project": "apollo"}


def event_of(who: Identity, cost: float | None, cache_hit: bool) -> UsageEvent:
    return usage_event(
        who,
        event_id="e1",
        request_id="r1",
        provider="openai",
        model="gpt-4o",
        end_time=datetime(2026, 1, 1, tzinfo=UTC),
        latency_ms=3,
        usage=usage(prompt_tokens=1000, completion_tokens=500),
        cost=cost,
        cache_hit=cache_hit,
    )


def usage(**fields: object) -> SimpleNamespace:
    details = SimpleNamespace(cached_tokens=fields.pop("cached", 0))
    reasoning = SimpleNamespace(reasoning_tokens=fields.pop("reasoning", 0))
    return SimpleNamespace(prompt_tokens_details=details, completion_tokens_details=reasoning, **fields)


def test_anthropic_cache_writes_are_their_own_tokens() -> None:
    """Cache-creation tokens were billed at the input price: cache_write_tokens was never set."""
    counts = tokens_of(
        usage(prompt_tokens=215_000, completion_tokens=1000, cached=10_000, cache_creation_input_tokens=5000)
    )
    assert (counts.input, counts.cache_read, counts.cache_write, counts.output) == (200_000, 10_000, 5000, 1000)
    counts = tokens_of(usage(prompt_tokens=100, completion_tokens=50, cached=20, reasoning=30))
    assert (counts.input, counts.cache_read, counts.cache_write, counts.output, counts.reasoning) == (80, 20, 0, 20, 30)


def test_a_response_from_litellms_cache_costs_nothing() -> None:
    """A cache hit was billed at full price."""
    event = event_of(Identity("acme", "eng", "ada", "chat", None), cost=0.0125, cache_hit=True)
    assert (event.input_tokens, event.output_tokens, event.cost_nanos, event.metadata) == (
        0,
        0,
        0,
        {"litellm_cache_hit": "true"},
    )


@pytest.fixture
def berlin() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ")
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_a_naive_end_time_is_the_hosts_local_time(berlin: None) -> None:
    """LiteLLM passes a naive local end_time; labelled UTC, it put costs up to a day off on hosts not on UTC."""
    local = datetime(2026, 7, 1, 0, 30)  # half past midnight in Berlin (CEST) is 22:30 UTC the day before
    assert occurred_at(local) == datetime(2026, 6, 30, 22, 30, tzinfo=UTC)
    assert occurred_at(datetime(2026, 7, 1, 0, 30, tzinfo=UTC)) == datetime(2026, 7, 1, 0, 30, tzinfo=UTC)


def test_the_prompt_bound_counts_text_bytes_not_images_and_errs_high() -> None:
    from integrations.litellm_mapping import prompt_tokens_bound

    assert prompt_tokens_bound(None) == 0 and prompt_tokens_bound("not a list") == 0
    english = "The quick brown fox jumps over the lazy dog. " * 20  # 180 words: about 200 tokens
    assert prompt_tokens_bound([{"role": "user", "content": english}]) == -(-len(english) // 3) + 4
    assert prompt_tokens_bound([{"role": "user", "content": english}]) >= 200
    cjk = "漢字のテキスト" * 10  # 70 characters, 210 bytes: at most about one token a character
    assert prompt_tokens_bound([{"role": "user", "content": cjk}]) >= 70
    parts = [
        {"type": "text", "text": "describe this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}},
    ]
    assert prompt_tokens_bound([{"role": "user", "content": parts}]) < 20  # the image is priced elsewhere
    calls = [{"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": "x" * 30}}]}]
    assert prompt_tokens_bound(calls) == 10 + 4


def test_read_is_getattr_for_models_and_anything_else() -> None:
    """The hook reads LiteLLM's pydantic usage without the exception a missing attribute raises; what it
    reads must be what ``getattr`` reads, for fields, extras, properties, private attributes and the rest."""
    from pydantic import BaseModel, ConfigDict, PrivateAttr

    class Usage(BaseModel):
        model_config = ConfigDict(extra="allow")
        prompt_tokens: int = 0
        details: dict[str, int] | None = None
        _hidden: int = PrivateAttr(default=7)

        @property
        def doubled(self) -> int:
            return self.prompt_tokens * 2

    class Detailed(Usage):
        pass

    for usage in (Usage(prompt_tokens=5, cache_creation_input_tokens=3), Detailed(prompt_tokens=4), Usage()):
        for name in ("prompt_tokens", "details", "cache_creation_input_tokens", "doubled", "_hidden", "absent"):
            assert read(usage, name) == getattr(usage, name, None), name
    for other in (SimpleNamespace(prompt_tokens=3), {"prompt_tokens": 3}, None, 5):
        assert read(other, "prompt_tokens") == getattr(other, "prompt_tokens", None)
