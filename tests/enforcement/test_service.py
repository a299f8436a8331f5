"""The decision HTTP service over the real Redis, through httpx's ASGI transport."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from enforcement.budget_store import apply_budgets
from enforcement.client import AsyncCapClient
from enforcement.estimator import Estimator, OutputSizes
from enforcement.keys import KeyLayout
from enforcement.service import OPENAPI, create_app
from schemas import PriceCatalogue, PriceEntry, TokenPrices
from schemas.budget_file import parse_budget_file
from schemas.settings import Settings

KEY = "proxy-secret-1"
AUTH = {"Authorization": f"Bearer {KEY}"}
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

    def __init__(self, redis_url: str, key_prefix: str, estimator: Estimator) -> None:
        self.loop = asyncio.new_event_loop()
        self.caps = AsyncCapClient(aioredis.Redis.from_url(redis_url), key_prefix=key_prefix)
        app = create_app(self.caps, [KEY], estimator)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://decision")

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return self.loop.run_until_complete(self.http.request(method, path, **kwargs))  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        self.loop.run_until_complete(self.caps.redis.aclose())
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


def test_reserve_settle_release_and_spend(app_client: AppClient) -> None:
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
    settled = call(
        app_client,
        "POST",
        "/v1/settle",
        headers=AUTH,
        json={**ADA, "request_id": "r1", "event_id": "e1", "cost_nanos": 2_500_000},
    )
    assert settled.json()["applied"] is True and settled.json()["released_reservation"] is True
    again = call(
        app_client,
        "POST",
        "/v1/settle",
        headers=AUTH,
        json={**ADA, "request_id": "r1", "event_id": "e1", "cost_nanos": 2_500_000},
    )
    assert again.json()["duplicate"] is True
    spend = call(app_client, "GET", "/v1/spend/user/ada", headers=AUTH, params={"org_id": "acme"})
    assert spend.json()["nanos"] == {"daily": 2_500_000, "weekly": 2_500_000, "monthly": 2_500_000, "reserved": 0}
    model_spend = call(app_client, "GET", "/v1/spend/model/gpt-4o", headers=AUTH, params={"org_id": "acme"})
    assert model_spend.json()["nanos"]["monthly"] == 2_500_000
    assert call(
        app_client, "POST", "/v1/release", headers=AUTH, json={"org_id": "acme", "request_id": "r1"}
    ).json() == {"released": False}


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
        ("/v1/settle", {**ADA, "event_id": "e1", "cost_nanos": 0.1}, "cost_nanos"),
        ("/v1/settle", {**ADA, "cost_nanos": 1}, "event_id"),
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
    assert {"/v1/reserve", "/v1/settle", "/v1/release", "/v1/spend/{scope}/{id}", "/healthz"} <= set(doc["paths"])
    assert set(doc["components"]["schemas"]) >= {"ReserveBody", "SettleBody", "ReleaseBody", "Decision"}


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
