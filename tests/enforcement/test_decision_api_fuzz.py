"""Fuzz the decision service from its own OpenAPI document (Schemathesis), against the real Redis.

Whatever a caller sends, the service answers without a 5xx, and a request it refuses (4xx) changes
nothing in Redis. Requests go through the ASGI app on one event loop, as a server runs them. The fuzzed
deployment lives in a Redis database of its own, so comparing its keys before and after each example
walks only its keys, however many the rest of the suite has left in database 0."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings

from enforcement.decision_api import OPENAPI
from schemas.settings import Settings
from tests.enforcement.test_decision_api import AUTH, AppClient, app_client  # noqa: F401 - the fixture

pytestmark = pytest.mark.stack

schema = schemathesis.openapi.from_dict(OPENAPI)


def snapshot(client: redis.Redis, prefix: str) -> dict[bytes, Any]:
    """Every key of the fuzzed deployment, with its content."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(f"{prefix}:*", count=10_000):
        kind = client.type(key)
        out[key] = client.hgetall(key) if kind == b"hash" else client.zrange(key, 0, -1, withscores=True)
    return out


FUZZ_DB = 13


@pytest.fixture
def stack(stack: Settings) -> Settings:
    """The suite's services, with Redis on database ``FUZZ_DB``: what ``app_client`` builds uses it."""
    parts = urlsplit(stack.redis.url)
    if parts.scheme == "unix":  # the socket is the path; the database goes in the query
        url = urlunsplit(parts._replace(query=f"db={FUZZ_DB}"))
    else:
        url = urlunsplit(parts._replace(path=f"/{FUZZ_DB}"))
    return stack.model_copy(update={"redis": stack.redis.model_copy(update={"url": url})})


@pytest.fixture
def redis_sync(stack: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis.url)
    yield client
    client.close()


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))  # per operation (120: 2 min)
def test_no_5xx_and_a_refused_request_changes_nothing(
    case: Any,
    app_client: AppClient,  # noqa: F811 - the fixture
    redis_sync: redis.Redis,
    key_prefix: str,
) -> None:
    before = snapshot(redis_sync, key_prefix)
    sent = case.as_transport_kwargs(base_url="http://decision", headers=AUTH)
    response = app_client.request(
        sent["method"], sent["url"], headers=sent.get("headers"), params=sent.get("params"), content=_body(sent)
    )
    assert response.status_code < 500, (sent, response.status_code, response.text)
    if 400 <= response.status_code < 500:
        assert snapshot(redis_sync, key_prefix) == before, (sent, response.text)
        assert response.json()["error"]["field"], response.text


def _body(sent: dict[str, Any]) -> bytes | None:
    import json

    if "json" in sent:
        return json.dumps(sent["json"]).encode()
    data = sent.get("data") or sent.get("content")
    return data.encode() if isinstance(data, str) else data
