"""Where an org's alerts may be sent, and whose secrets a channel may name (pure: no I/O).

Every tenant is hostile to every other, and a webhook URL is a value a tenant supplies. So:

* **No internal targets.** A Slack or Teams URL may not name a loopback, private, link-local,
  unique-local, multicast or reserved address, nor a local name (``localhost``, ``*.local``,
  ``*.internal``, a name of one label, a number written as a name), unless the operator's allow-list
  (``alerts.webhook_allow_hosts``) names that host. The console checks the URL when a channel is saved;
  the worker checks every address the name resolves to just before it sends, and connects to the address
  it checked (:mod:`alerting.webhooks`), so a name that later resolves inward (DNS rebinding) is refused.
* **Secrets per org.** ``env:NAME`` reads the worker's environment, which every org shares; an org may
  only name variables under its own prefix, ``SPENDSTREAM_SECRET_<ORG>_``, where ``<ORG>`` is the org id
  in upper case with every character other than a letter or digit written as ``_`` (acme:
  ``SPENDSTREAM_SECRET_ACME_``). Two org ids that differ only in case or punctuation would share a prefix:
  :func:`prefix_shared_by` finds them, and the console refuses to save a secret reference for such an org.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = [
    "SECRET_PREFIX",
    "InternalTargetError",
    "allowed_hosts",
    "check_address",
    "check_secret_name",
    "check_webhook_url",
    "org_secret_prefix",
    "prefix_shared_by",
]

SECRET_PREFIX = "SPENDSTREAM_SECRET_"  # noqa: S105 - a prefix of names, not a secret
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".lan", ".intranet")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


class InternalTargetError(ValueError):
    """A target that would reach an internal service: the message says why."""


def org_secret_prefix(org_id: str) -> str:
    """The environment prefix of the variables an org's channels may name."""
    return SECRET_PREFIX + re.sub(r"[^A-Z0-9]", "_", org_id.upper()) + "_"


def check_secret_name(org_id: str, name: str) -> None:
    """Raises :class:`InternalTargetError` unless ``name`` is under the org's own prefix."""
    prefix = org_secret_prefix(org_id)
    if not name.startswith(prefix) or len(name) == len(prefix):
        raise InternalTargetError(f"secrets of org {org_id} are environment variables named {prefix}<NAME>")


def prefix_shared_by(org_id: str, other_orgs: Iterable[str]) -> str | None:
    """Another org whose secrets would have the same prefix, if any."""
    mine = org_secret_prefix(org_id)
    return next((o for o in sorted(other_orgs) if o != org_id and org_secret_prefix(o) == mine), None)


def allowed_hosts(setting: str) -> frozenset[str]:
    """The operator's allow-list (``alerts.webhook_allow_hosts``): comma-separated hosts, lower case."""
    return frozenset(part.strip().lower().strip("[]") for part in setting.split(",") if part.strip())


def check_address(address: str) -> None:
    """Raises :class:`InternalTargetError` for an address that is not on the public internet."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast:
        raise InternalTargetError(f"{address} is a loopback, private, link-local or reserved address")


def check_webhook_url(url: str, allow: frozenset[str]) -> str:
    """The URL's host, if an org's alerts may be posted to it; raises :class:`InternalTargetError`.

    This checks what the URL says; what its name resolves to is checked when the worker sends."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError as exc:
        raise InternalTargetError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InternalTargetError("must be an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise InternalTargetError("must not carry a user name or password")
    if host in allow:
        return host
    try:
        check_address(host)
        return host
    except ValueError as exc:
        if isinstance(exc, InternalTargetError):
            raise
    name = host.rstrip(".")
    labels = name.split(".")
    if (
        name == "localhost"
        or name.endswith(_LOCAL_SUFFIXES)
        or len(labels) < 2
        or all(_NUMERIC_LABEL.fullmatch(label) for label in labels)
    ):
        raise InternalTargetError(f"{host} is a local name, not a public host")
    return host
