"""Posting an org's alert to its webhook (Slack, Teams) without reaching an internal service.

The URL's name is resolved here, every address it resolves to is checked
(:func:`schemas.webhook_targets.check_address`), and the request goes to the checked address with the
original ``Host`` header and TLS server name, so a name that resolves inward by the time the request is
made (DNS rebinding) cannot slip past the check. Hosts on the operator's allow-list
(``alerts.webhook_allow_hosts``) are posted to as they are.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from schemas.webhook_targets import InternalTargetError, check_address, check_webhook_url

__all__ = ["InternalTargetError", "PinnedRequest", "pinned_request"]


@dataclass(frozen=True, slots=True)
class PinnedRequest:
    url: str  # with the checked address in place of the name
    headers: dict[str, str]
    extensions: dict[str, Any]


async def pinned_request(url: str, allow: frozenset[str]) -> PinnedRequest:
    """Where to post ``url``'s request; raises :class:`InternalTargetError` for an internal target."""
    host = check_webhook_url(url, allow)
    if host in allow:
        return PinnedRequest(url, {}, {})
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpx.ConnectError(f"cannot resolve the webhook's host: {exc}") from None
    addresses = sorted({str(info[4][0]) for info in found})
    if not addresses:
        raise httpx.ConnectError("the webhook's host has no address")
    for address in addresses:  # every one: a name with one inward address is refused
        check_address(address)
    address = addresses[0]
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
    return PinnedRequest(pinned, {"Host": host_header}, extensions)
