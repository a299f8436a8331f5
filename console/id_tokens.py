"""Checking an OpenID Connect ID token (pure: the keys are handed in; no I/O).

The signature and the claims are checked by ``joserfc`` (the JOSE library of Authlib's maintainer, which
Authlib's own ``authlib.jose`` now defers to): no JWT code of our own. What is ours is the policy:

* only asymmetric algorithms the provider announces: ``alg: none`` and HMAC (which would let a public key
  be used as a shared secret) are refused before any key is looked at;
* ``iss`` is the configured issuer, ``aud`` holds the client id (and ``azp`` names it when several
  audiences do), ``exp`` and ``iat`` are present and ``exp`` has not passed (with a bounded clock skew),
  ``nonce`` is the one this sign-in sent, and ``sub`` is there.

A refusal is a :class:`SsoRefused` whose ``field`` is the reason's code, as the audit trail records it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from joserfc import errors, jws, jwt
from joserfc.jwk import KeySet

from schemas.errors import SpendstreamError

__all__ = ["ASYMMETRIC", "SsoRefused", "token_header", "verify_id_token"]

ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}
)


class SsoRefused(SpendstreamError):  # noqa: N818 - a refusal, as the audit trail names it
    """A sign-in through the identity provider that is not let in: ``field`` is the reason's code
    (``state``, ``replayed``, ``nonce``, ``expired``, ``audience``, ``issuer``, ``signature``,
    ``algorithm``, ``provider``, ``unmapped``...), ``reason`` says it in words."""

    status = 403

    def __init__(self, field: str, reason: str, org_id: str = "") -> None:
        super().__init__(field, reason)
        self.org_id = org_id  # when the refusal knows the org before the caller does


def token_header(token: str) -> dict[str, Any]:
    """The token's protected header, unverified (to pick the key and refuse an algorithm early)."""
    try:
        return dict(jws.extract_compact(token.encode()).headers())
    except (errors.JoseError, ValueError, UnicodeError) as exc:
        raise SsoRefused("id_token", f"the provider's ID token is not a signed JWT: {exc}") from None


def verify_id_token(
    token: str,
    keys: KeySet,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: int,
    skew_s: int,
    algorithms: Collection[str],
) -> dict[str, Any]:
    """The token's claims, once its signature and claims hold; raises :class:`SsoRefused`."""
    allowed = [a for a in algorithms if a in ASYMMETRIC] or ["RS256"]
    alg = token_header(token).get("alg")
    if alg not in allowed:
        raise SsoRefused("algorithm", f"the ID token is signed with {alg!r}; only {', '.join(allowed)} are accepted")
    try:
        decoded = jwt.decode(token, keys, algorithms=allowed)
    except errors.InvalidKeyIdError:
        raise SsoRefused("signature", "the ID token names a key the provider does not publish") from None
    except (errors.BadSignatureError, errors.MissingKeyError):
        raise SsoRefused("signature", "the ID token's signature does not verify with the provider's keys") from None
    except (errors.JoseError, ValueError) as exc:
        raise SsoRefused("id_token", f"the ID token cannot be read: {exc}") from None
    registry = jwt.JWTClaimsRegistry(
        now=now,
        leeway=skew_s,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    claims = dict(decoded.claims)
    try:
        registry.validate(claims)
    except errors.ExpiredTokenError:
        raise SsoRefused("expired", "the ID token has expired") from None
    except errors.ClaimError as exc:
        code = {"aud": "audience", "iss": "issuer", "nonce": "nonce", "iat": "expired", "nbf": "expired"}.get(
            exc.claim, "id_token"
        )
        raise SsoRefused(code, f"the ID token's {exc.claim!r} claim is missing or not this sign-in's") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise SsoRefused("audience", "the ID token is for several audiences and its azp is not this console")
    if int(claims["iat"]) > now + skew_s:
        raise SsoRefused("expired", "the ID token is issued in the future")
    return claims
