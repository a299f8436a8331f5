"""A webhook's name is resolved, every address checked, and the request pinned to the checked address
(a name that resolves inward, as in DNS rebinding, is refused), against a real local receiver."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import httpx
import pytest

from alerting.webhooks import InternalTargetError, pinned_request


class _Resolver:
    """Answers getaddrinfo from a table, as a rebinding DNS server would."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def __call__(self, host: str, port: int, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in self.table[host]]


def _with_resolver(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> None:
    loop_class = type(asyncio.get_event_loop_policy().new_event_loop())
    monkeypatch.setattr(loop_class, "getaddrinfo", lambda self, host, port, **kw: _Resolver(table)(host, port))


def test_a_name_that_resolves_inward_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_resolver(monkeypatch, {"hooks.rebind.example": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(InternalTargetError, match=r"127\.0\.0\.1"):
        asyncio.run(pinned_request("https://hooks.rebind.example/x", frozenset()))


def test_a_public_name_is_pinned_to_the_address_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_resolver(monkeypatch, {"hooks.slack.example": ["93.184.216.34"]})
    pinned = asyncio.run(pinned_request("https://hooks.slack.example:8443/services/x?y=1", frozenset()))
    assert pinned.url == "https://93.184.216.34:8443/services/x?y=1"
    assert pinned.headers == {"Host": "hooks.slack.example:8443"}
    assert pinned.extensions == {"sni_hostname": "hooks.slack.example"}


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.headers["Host"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


def test_an_allowed_host_is_posted_to_with_its_own_host_header(receiver: tuple[str, list[str]]) -> None:
    url, seen = receiver

    async def post() -> int:
        pinned = await pinned_request(url + "/slack", frozenset({"127.0.0.1"}))
        async with httpx.AsyncClient() as client:
            answer = await client.post(pinned.url, json={}, headers=pinned.headers, extensions=pinned.extensions)
        return answer.status_code

    assert asyncio.run(post()) == 200
    assert seen == [url.removeprefix("http://")]
    with pytest.raises(InternalTargetError):
        asyncio.run(pinned_request(url + "/slack", frozenset()))


def test_the_sender_refuses_an_internal_webhook_for_good(receiver: tuple[str, list[str]]) -> None:
    from alerting.senders import DeliveryError, Senders

    url, seen = receiver

    async def send() -> None:
        async with httpx.AsyncClient() as client:
            await Senders(client)._post_webhook(url + "/slack", {"text": "hi"})

    with pytest.raises(DeliveryError) as info:
        asyncio.run(send())
    assert not info.value.retryable and "refused" in str(info.value)
    assert seen == []  # nothing reached the internal service
