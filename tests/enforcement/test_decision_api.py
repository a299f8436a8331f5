"""The decision HTTP service over the real Redis, through httpx's ASGI transport."""

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from enforcement.access import ApiKey, KeyRing, Right, hash_key, parse_keys
from enforcement.budget_store import apply_budgets
from enforcement.client import AsyncCapClient
from enforcement.decision_api import OPENAPI, TagsOf, create_app
from enforcement.estimator import Estimator, OutputSizes
from enforcement.keys import KeyLayout
from schemas import PriceCatalogue, PriceEntry, TokenPrices
from schemas.allocation_tags import cap_tags, tag_values
from schemas.budget_file import parse_budget_file
from schemas.events import UsageEvent, decode_event
from schemas.settings import Settings
from tests.enforcement.settle import Settler

KEY = "proxy-secret-1"
AUTH = {"Authorization": f"Bearer {KEY}"}
OTHER_KEY = "proxy-secret-of-globex"  # a key of another org
READER_KEY = "proxy-secret-reader"  # acme's, but may only read spend
KEYS = KeyRing(
    [
        ApiKey("acme-proxy", hash_key(KEY), frozenset({"acme"}), frozenset(Right)),
        ApiKey("globex-proxy", hash_key(OTHER_KEY), frozenset({"globex"}), frozenset(Right)),
        ApiKey("acme-reader", hash_key(READER_KEY), frozenset({"acme"}), frozenset({Right.SPEND})),
    ]
)
ADA = {
    "org_id": "acme",
    "department_id": "eng",
    "user_id": "ada",
    "feature": "chat",
    "model": "gpt-4o",
    "provider": "openai",
}


class AppClient:
    """Runs each request on one event loop for the whole test, as a server would."""

    def __init__(self, redis_url: str, key_prefix: str, estimator: Estimator, tags: TagsOf | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.caps = AsyncCapClient(aioredis.Redis.from_url(redis_url), key_prefix=key_prefix)
        self.published: list[UsageEvent] = []

        async def publish(event: UsageEvent) -> None:
            self.published.append(event)

        app = create_app(self.caps, KEYS, estimator, publish, tags=tags)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://decision")

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return self.loop.run_until_complete(self.http.request(method, path, **kwargs))  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        self.loop.run_until_complete(self.caps.aclose())
        self.loop.close()


@pytest.fixture
def app_client(stack: Settings, redis_client: redis.Redis, key_prefix: str) -> Iterator[AppClient]:
    parsed = parse_budget_file("""
budgets:
  - {org: acme, scope: user, id: ada, period: monthly, limit: "0.01", mode: hard}
""")
    apply_budgets(redis_client, KeyLayout(key_prefix), parsed.orgs.values(), parsed.budgets)
    catalogue = PriceCatalogue.of(
        [
            PriceEntry(
                "openai",
                "gpt-4o",
                datetime(2024, 1, 1, tzinfo=UTC),
                TokenPrices(Decimal("0.000001"), Decimal("0.000002")),
            )
        ]
    )
    client = AppClient(stack.redis.url, key_prefix, Estimator(catalogue, OutputSizes(min_samples=1)))
    yield client
    client.close()


def call(client: AppClient, method: str, path: str, **kwargs: object) -> httpx.Response:
    return client.request(method, path, **kwargs)


def test_reserve_release_spend_and_usage(app_client: AppClient, stack: Settings, key_prefix: str) -> None:
    r = call(
        app_client, "POST", "/v1/reserve", headers=AUTH, json={**ADA, "request_id": "r1", "estimate_nanos": 6_000_000}
    )
    assert r.status_code == 200 and r.json()["allowed"] is True
    assert r.json()["remaining_nanos"] == {"user/ada/monthly": 4_000_000}
    denied = call(
        app_client, "POST", "/v1/reserve", headers=AUTH, json={**ADA, "request_id": "r2", "estimate_nanos": 6_000_000}
    )
    body = denied.json()
    assert denied.status_code == 200 and body["allowed"] is False and body["outcome"] == "denied"
    assert body["blocking"]["scope"] == "user/ada" and body["blocking"]["reserved_nanos"] == 6_000_000
    # The request's cost goes as its UsageEvent, published for the stream to settle: never straight to Redis.
    event = {
        **{k: v for k, v in ADA.items()},
        "event_id": "e1",
        "request_id": "r1",
        "occurred_at": datetime.now(UTC).isoformat(),
        "input_tokens": 100,
        "cost_nanos": 2_500_000,
    }
    accepted = call(app_client, "POST", "/v1/usage", headers=AUTH, json=event)
    assert accepted.status_code == 202 and accepted.json() == {"accepted": True, "event_id": "e1"}
    assert [e.event_id for e in app_client.published] == ["e1"]
    assert call(app_client, "GET", "/v1/spend/user/ada", headers=AUTH, params={"org_id": "acme"}).json()["nanos"] == {
        "daily": 0,
        "weekly": 0,
        "monthly": 0,
        "reserved": 6_000_000,
    }
    # ... which the worker does with the settle script: then spend shows it and the hold is gone.
    settle = Settler(redis.Redis.from_url(stack.redis.url), key_prefix)
    published = app_client.published[0]
    subject = decode_event(json.dumps(event))
    assert subject == published
    from enforcement.subject import Subject

    who = Subject("acme", "ada", "eng", "chat", "gpt-4o", "openai")
    assert settle(who, published.event_id, 2_500_000, request_id="r1", occurred_at=published.occurred_at).applied
    spend = call(app_client, "GET", "/v1/spend/user/ada", headers=AUTH, params={"org_id": "acme"})
    assert spend.json()["nanos"] == {"daily": 2_500_000, "weekly": 2_500_000, "monthly": 2_500_000, "reserved": 0}
    model_spend = call(app_client, "GET", "/v1/spend/model/gpt-4o", headers=AUTH, params={"org_id": "acme"})
    assert model_spend.json()["nanos"]["monthly"] == 2_500_000
    assert call(
        app_client, "POST", "/v1/release", headers=AUTH, json={"org_id": "acme", "request_id": "r1"}
    ).json() == {"released": False}


def test_a_reserve_naming_tags_is_capped_by_its_orgs_declared_tag_budgets(
    stack: Settings, redis_client: redis.Redis, key_prefix: str
) -> None:
    parsed = parse_budget_file("""
orgs:
  acme: {tags: [project, {env: {values: [prod, dev], missing: prod}}]}
budgets:
  - {org: acme, scope: tag, id: project=apollo, period: monthly, limit: "0.005", mode: hard}
  - {org: acme, scope: tag, id: env=prod, period: daily, limit: "0.008", mode: hard}
""")
    apply_budgets(redis_client, KeyLayout(key_prefix), parsed.orgs.values(), parsed.budgets)
    org = parsed.orgs["acme"]

    def tags(org_id: str, given: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return cap_tags(tag_values(org.tags, given)) if org_id == "acme" else ()

    client = AppClient(stack.redis.url, key_prefix, Estimator(PriceCatalogue()), tags)
    try:

        def reserve(request_id: str, estimate: int, given: object) -> httpx.Response:
            body = {**ADA, "request_id": request_id, "estimate_nanos": estimate, "tags": given}
            return call(client, "POST", "/v1/reserve", headers=AUTH, json=body)

        denied = reserve("t1", 6_000_000, {"project": "apollo", "env": "dev"}).json()
        assert not denied["allowed"] and denied["blocking"]["scope"] == "tag/project=apollo"
        allowed = reserve("t2", 6_000_000, {"project": "zeus", "env": "dev", "undeclared": "x"}).json()
        assert allowed["allowed"] and allowed["remaining_nanos"] == {}  # no budget on zeus, dev, or undeclared
        no_env = reserve("t3", 9_000_000, {"project": "zeus"}).json()  # env's missing value: prod
        assert not no_env["allowed"] and no_env["blocking"]["scope"] == "tag/env=prod"
        assert reserve("t4", 3_000_000, None).json()["remaining_nanos"] == {"tag/env=prod/daily": 5_000_000}
        for given in ({"Project": "a"}, {"project": "a b"}, "x", {f"t{i}": "v" for i in range(9)}):
            r = reserve("t5", 1, given)
            assert r.status_code == 400 and r.json()["error"]["field"].startswith("$.tags"), r.text
        spend = call(client, "GET", "/v1/spend/tag/env=prod", headers=AUTH, params={"org_id": "acme"})
        assert spend.status_code == 200 and spend.json()["nanos"]["reserved"] == 3_000_000
        bad = call(client, "GET", "/v1/spend/tag/prod", headers=AUTH, params={"org_id": "acme"})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "id"
    finally:
        client.close()


def test_a_key_acts_for_its_own_orgs_and_rights_only(app_client: AppClient, redis_client: redis.Redis) -> None:
    """Any key could reserve, release or read spend for any org; now each key is bound to its orgs."""
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    reader = {"Authorization": f"Bearer {READER_KEY}"}
    before = sorted(redis_client.scan_iter("*"))
    attempts = [
        (other, "POST", "/v1/reserve", {"json": {**ADA, "request_id": "x1", "estimate_nanos": 1}}),
        (other, "POST", "/v1/release", {"json": {"org_id": "acme", "request_id": "x1"}}),
        (other, "GET", "/v1/spend/user/ada", {"params": {"org_id": "acme"}}),
        (other, "GET", "/v1/spend/org/acme", {}),
        (other, "POST", "/v1/usage", {"json": {**ADA, "event_id": "x", "occurred_at": datetime.now(UTC).isoformat()}}),
        (reader, "POST", "/v1/reserve", {"json": {**ADA, "request_id": "x2", "estimate_nanos": 1}}),
        (reader, "POST", "/v1/usage", {"json": {**ADA, "event_id": "y", "occurred_at": datetime.now(UTC).isoformat()}}),
    ]
    for headers, method, path, kwargs in attempts:
        r = call(app_client, method, path, headers=headers, **kwargs)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["field"] in ("org_id", "authorization")
    assert sorted(redis_client.scan_iter("*")) == before  # a refused request changed nothing
    assert app_client.published == []
    assert call(app_client, "GET", "/v1/spend/user/ada", headers=reader, params={"org_id": "acme"}).status_code == 200


@pytest.mark.parametrize(
    ("shift", "allowed"),
    [
        (timedelta(hours=-25), False),
        (timedelta(minutes=-5), True),
        (timedelta(minutes=4), True),
        (timedelta(minutes=6), False),
    ],
)
def test_usage_time_is_bounded(app_client: AppClient, shift: timedelta, allowed: bool) -> None:
    """A caller cannot put cost into past or future periods: 24 h back and 5 min ahead at most."""
    event = {**ADA, "event_id": "e1", "occurred_at": (datetime.now(UTC) + shift).isoformat()}
    r = call(app_client, "POST", "/v1/usage", headers=AUTH, json=event)
    if allowed:
        assert r.status_code == 202
    else:
        assert r.status_code == 400 and r.json()["error"]["field"] == "$.occurred_at"
        assert "in the past" in r.json()["error"]["reason"] or "in the future" in r.json()["error"]["reason"]


def test_keys_file_is_validated_and_holds_hashes_only() -> None:
    ring = parse_keys({"keys": [{"name": "eu", "sha256": hash_key("s3cret"), "orgs": ["acme"]}]})
    key = ring.authenticate("Bearer s3cret")
    assert key is not None and key.may("acme", Right.RESERVE) and not key.may("globex", Right.RESERVE)
    assert ring.authenticate("Bearer " + hash_key("s3cret")) is None  # the stored hash is not a key
    assert ring.authenticate("Bearer s3cret") is key  # again, from the headers it has seen
    for i in range(3000):  # unknown keys are never remembered, so they cannot fill its memory
        assert ring.authenticate(f"Bearer guess-{i}") is None
    assert len(ring._by_header) == 1
    assert ring.authenticate("Bearer s3cret ") is key and ring.authenticate("bearer s3cret") is None
    from enforcement.access import KeyFileError

    for doc, field in (
        ({"keys": [{"name": "eu", "sha256": "s3cret", "orgs": ["acme"]}]}, "keys[0].sha256"),
        ({"keys": [{"name": "eu", "sha256": hash_key("a"), "orgs": ["acme\n"]}]}, "keys[0].orgs[0]"),
        ({"keys": [{"name": "eu", "sha256": hash_key("a"), "orgs": ["acme"], "rights": ["settle"]}]}, "keys[0].rights"),
        ({"keys": [{"name": "eu", "sha256": hash_key("a")}]}, "keys[0].orgs"),
        ({"keys": []}, "keys"),
    ):
        with pytest.raises(KeyFileError) as info:
            parse_keys(doc)
        assert info.value.field == field


def test_estimator_fills_in_a_missing_estimate(app_client: AppClient) -> None:
    r = call(
        app_client,
        "POST",
        "/v1/reserve",
        headers=AUTH,
        json={**ADA, "request_id": "r1", "prompt_tokens": 1000, "max_tokens": 500},
    )
    assert r.json()["estimate_nanos"] == 1000 * 1_000 + 500 * 2_000


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/v1/reserve", {**ADA, "request_id": "r:1", "estimate_nanos": 1}, "request_id"),
        ("/v1/reserve", {**ADA, "org_id": "{acme}", "request_id": "r1", "estimate_nanos": 1}, "org_id"),
        ("/v1/reserve", {**ADA, "request_id": "r1", "estimate_nanos": -1}, "estimate_nanos"),
        ("/v1/reserve", {**ADA, "request_id": "r1", "estimate_nanos": 10**18}, "estimate"),
        ("/v1/reserve", {**ADA, "request_id": "r1", "estimate_nanos": 1.5}, "estimate_nanos"),
        ("/v1/reserve", {**ADA, "request_id": "r1"}, "estimate_nanos"),
        ("/v1/reserve", {**ADA, "request_id": "r1", "estimate_nanos": 1, "colour": "red"}, "colour"),
        (
            "/v1/usage",
            {**ADA, "event_id": "e1", "occurred_at": "2026-01-01T00:00:00Z", "cost_nanos": 0.1},
            "cost_nanos",
        ),
        ("/v1/usage", {**ADA, "occurred_at": "2026-01-01T00:00:00Z"}, "event_id"),
        ("/v1/usage", {**ADA, "event_id": "e1\n", "occurred_at": "2026-01-01T00:00:00Z"}, "event_id"),
        ("/v1/release", {"org_id": "acme"}, "request_id"),
    ],
)
def test_bad_requests_name_the_field(app_client: AppClient, path: str, payload: dict[str, object], field: str) -> None:
    r = call(app_client, "POST", path, headers=AUTH, json=payload)
    assert r.status_code == 400
    assert field in r.json()["error"]["field"], r.json()


def test_auth_is_required(app_client: AppClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        r = call(
            app_client, "POST", "/v1/reserve", headers=headers, json={**ADA, "request_id": "r1", "estimate_nanos": 1}
        )
        assert r.status_code == 401
    assert call(app_client, "GET", "/v1/spend/user/ada").status_code == 401


def test_health_metrics_and_openapi(app_client: AppClient) -> None:
    assert call(app_client, "GET", "/healthz").json() == {"status": "ok"}
    call(app_client, "POST", "/v1/reserve", headers=AUTH, json={**ADA, "request_id": "r1", "estimate_nanos": 1})
    assert "spendstream_cap_decisions_total" in call(app_client, "GET", "/metrics").text
    doc = call(app_client, "GET", "/openapi.json").json()
    assert doc == OPENAPI
    assert {"/v1/reserve", "/v1/usage", "/v1/release", "/v1/spend/{scope}/{id}", "/healthz"} <= set(doc["paths"])
    assert "/v1/settle" not in doc["paths"]  # no direct settle: every cost goes through the usage topic
    assert set(doc["components"]["schemas"]) >= {"ReserveBody", "UsageEvent", "ReleaseBody", "Decision", "Error"}


def test_redis_down_fails_closed_and_reads_answer_503() -> None:
    client = AppClient("redis://127.0.0.1:1/0", "down", Estimator(PriceCatalogue()))
    try:
        decision = call(
            client, "POST", "/v1/reserve", headers=AUTH, json={**ADA, "request_id": "r1", "estimate_nanos": 1}
        ).json()
        assert (decision["allowed"], decision["outcome"]) == (False, "fail_closed")
        assert call(client, "GET", "/v1/spend/user/ada", headers=AUTH, params={"org_id": "acme"}).status_code == 503
        assert (
            call(client, "POST", "/v1/release", headers=AUTH, json={"org_id": "acme", "request_id": "r1"}).status_code
            == 503
        )
        assert call(client, "GET", "/healthz").status_code == 503
    finally:
        client.close()
