"""Who may call the decision service: proxy API keys, each bound to its orgs and rights. Pure.

Keys are stored hashed (SHA-256 of the key, hex); the key itself is shown once, when it is made
(``spendstream decision new-key``), and never kept. The keys file (YAML or JSON)::

    keys:
      - name: proxy-eu                 # for logs and metrics; never the secret
        sha256: 3f0a...                # hex SHA-256 of the key
        orgs: [acme, globex]           # the orgs it acts for; ["*"] for every org
        rights: [reserve, release, usage, spend]   # the default: all four

A key random enough to be a secret (32 bytes from ``secrets``) needs no slow hash: SHA-256
cannot be reversed, and a lookup by digest leaks nothing useful about other keys.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schemas.errors import SpendstreamError
from schemas.events import ID_PATTERN

__all__ = ["ApiKey", "KeyFileError", "KeyRing", "Right", "hash_key", "new_key", "parse_keys"]

_ID = re.compile(ID_PATTERN)
_HEX = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
ALL_ORGS = "*"
_KNOWN_HEADERS = 1024


class Right(StrEnum):
    RESERVE = "reserve"  # POST /v1/reserve
    RELEASE = "release"  # POST /v1/release
    USAGE = "usage"  # POST /v1/usage
    SPEND = "spend"  # GET /v1/spend/...


class KeyFileError(SpendstreamError):
    """A keys file that cannot be used; ``field`` names the entry and field."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    sha256: str
    orgs: frozenset[str]
    rights: frozenset[Right]

    def may(self, org_id: str, right: Right) -> bool:
        return right in self.rights and (ALL_ORGS in self.orgs or org_id in self.orgs)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh proxy key: 32 random bytes, URL-safe."""
    return "ssk_" + secrets.token_urlsafe(32)


class KeyRing:
    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_digest = {key.sha256: key for key in keys}
        if not self._by_digest:
            raise KeyFileError("keys", "at least one key is needed")
        # header -> key, for headers that named a key: a proxy sends the same one on every request. Only
        # known keys are kept (at most _KNOWN_HEADERS headers), so unknown ones cannot fill it.
        self._by_header: dict[str, ApiKey] = {}

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, authorization: str | None) -> ApiKey | None:
        """The key an ``Authorization: Bearer <key>`` header names, or None."""
        known = self._by_header.get(authorization) if authorization else None
        if known is not None:
            return known
        if not authorization or not authorization.startswith("Bearer "):
            return None
        key = self._by_digest.get(hash_key(authorization[7:].strip()))
        if key is not None and len(self._by_header) < _KNOWN_HEADERS:
            self._by_header[authorization] = key
        return key


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise KeyFileError(where, "a non-empty list of strings")
    return value


def parse_keys(doc: Any) -> KeyRing:
    """A key ring from a parsed keys file; every error names its field."""
    if not isinstance(doc, Mapping) or set(doc) != {"keys"}:
        raise KeyFileError("$", "expected a mapping with one key, keys")
    entries = doc["keys"]
    if not isinstance(entries, list):
        raise KeyFileError("keys", "expected a list")
    out: list[ApiKey] = []
    names: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"keys[{i}]"
        if not isinstance(entry, Mapping):
            raise KeyFileError(where, "expected a mapping")
        unknown = set(entry) - {"name", "sha256", "orgs", "rights"}
        if unknown:
            raise KeyFileError(f"{where}.{sorted(unknown)[0]}", "unknown field")
        name, digest = entry.get("name"), entry.get("sha256")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise KeyFileError(f"{where}.name", "1-64 of A-Z a-z 0-9 _ . -")
        if name in names:
            raise KeyFileError(f"{where}.name", f"a second key named {name}")
        names.add(name)
        if not isinstance(digest, str) or not _HEX.fullmatch(digest):
            raise KeyFileError(f"{where}.sha256", "the key's SHA-256, 64 lower-case hex digits (never the key itself)")
        orgs = _strings(entry.get("orgs"), f"{where}.orgs")
        for j, org in enumerate(orgs):
            if org != ALL_ORGS and not _ID.fullmatch(org):
                raise KeyFileError(f"{where}.orgs[{j}]", f"{org!r} is not an org id (or * for every org)")
        rights = _strings(entry.get("rights", [r.value for r in Right]), f"{where}.rights")
        try:
            parsed = frozenset(Right(r) for r in rights)
        except ValueError:
            raise KeyFileError(f"{where}.rights", "each one of reserve, release, usage, spend") from None
        out.append(ApiKey(name, digest, frozenset(orgs), parsed))
    digests = [key.sha256 for key in out]
    if len(set(digests)) != len(digests):
        raise KeyFileError("keys", "two entries share one sha256")
    return KeyRing(out)
