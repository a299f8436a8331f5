"""Passwords (argon2id), session ids, CSRF tokens and API tokens: what is stored is never what is shown."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["TOKEN_PREFIX", "digest", "hash_password", "new_secret", "new_token", "same", "verify_password"]

TOKEN_PREFIX = "ssc_"  # noqa: S105 - a prefix, not a secret; spendstream console: a scanner can tell our tokens from others
_HASHER = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile


def hash_password(password: str) -> str:
    if len(password) < 12:
        raise ValueError("password: at least 12 characters")
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def new_secret() -> str:
    """A session id or CSRF token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the store keeps of a session id or API token (both are random, so SHA-256 is enough)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
