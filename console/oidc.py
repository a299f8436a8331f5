"""The console as an OpenID Connect relying party: discovery, the authorization request (PKCE, ``state``,
``nonce``), the code exchange and the provider's keys.

Protocol pieces come from Authlib (the authorization URL, the token request's body and client
authentication, the PKCE challenge) and the ID token is checked by ``joserfc``
(:mod:`console.id_tokens`); what this module adds is the I/O around them:

* **No internal targets.** An org's owner names the issuer, so every URL the console fetches (discovery,
  token, keys) is checked as a webhook is, resolved and fetched at the checked address
  (:func:`alerting.webhooks.pinned_request`), unless the operator's ``console.oidc_allow_hosts`` names it.
  Discovery must name the issuer it was asked for.
* **Keys.** The provider's JWKS is kept, and fetched again when a token names a key id it does not
  hold (a rotation), at most once per ``console.oidc_jwks_refresh_s``, so that tokens naming made-up
  keys cannot make the console hammer the provider.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc.jwk import KeySet

from alerting.webhooks import InternalTargetError, pinned_request
from console.id_tokens import ASYMMETRIC, SsoRefused, token_header, verify_id_token
from console.sso_rules import SsoSettings

__all__ = ["OidcClient", "ProviderInfo"]

_DISCOVERY_TTL_S = 3600.0
_MAX_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What the provider's discovery document says, as far as the console uses it."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str
    algorithms: tuple[str, ...]
    auth_method: str  # how the console authenticates at the token endpoint


def _endpoint(doc: Mapping[str, Any], key: str, required: bool = True) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str) or (required and not value.startswith(("https://", "http://"))):
        raise SsoRefused("provider", f"the provider's discovery document has no usable {key}")
    return value


class OidcClient:
    def __init__(
        self,
        allow: frozenset[str],
        skew_s: int = 60,
        jwks_refresh_s: float = 30.0,
        timeout_s: float = 10.0,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.allow = allow
        self.skew_s = skew_s
        self.jwks_refresh_s = jwks_refresh_s
        self.timeout_s = timeout_s
        self.environ = environ
        self._providers: dict[str, tuple[ProviderInfo, float]] = {}
        self._keys: dict[str, tuple[KeySet, float]] = {}

    async def _fetch(self, method: str, url: str, data: str = "", headers: Mapping[str, str] | None = None) -> Any:
        try:
            pinned = await pinned_request(url, self.allow)
            async with (
                httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client,
                client.stream(
                    method,
                    pinned.url,
                    content=data or None,
                    headers={**pinned.headers, "Accept": "application/json", **(headers or {})},
                    extensions=pinned.extensions,
                ) as answer,
            ):
                content = b""
                async for chunk in answer.aiter_bytes():  # a provider's answer is read up to a bound, never whole
                    content += chunk
                    if len(content) > _MAX_BYTES:
                        raise SsoRefused("provider", f"the provider's answer from {url} is too large")
        except InternalTargetError as exc:
            raise SsoRefused("provider", f"the provider's URL {url} is not allowed: {exc}") from None
        except httpx.HTTPError as exc:
            raise SsoRefused("provider", f"the identity provider could not be reached: {type(exc).__name__}") from None
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if answer.status_code != 200 or not isinstance(body, dict):
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise SsoRefused("provider", f"the provider answered {answer.status_code} {error}".strip() + f" at {url}")
        return body

    async def provider(self, issuer: str) -> ProviderInfo:
        kept = self._providers.get(issuer)
        if kept and time.monotonic() - kept[1] < _DISCOVERY_TTL_S:
            return kept[0]
        doc = await self._fetch("GET", issuer + "/.well-known/openid-configuration")
        if doc.get("issuer") != issuer:
            raise SsoRefused("issuer", f"the provider's discovery names issuer {doc.get('issuer')!r}, not {issuer!r}")
        algorithms = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        info = ProviderInfo(
            issuer,
            _endpoint(doc, "authorization_endpoint"),
            _endpoint(doc, "token_endpoint"),
            _endpoint(doc, "jwks_uri"),
            _endpoint(doc, "end_session_endpoint", required=False),
            tuple(a for a in algorithms if isinstance(a, str) and a in ASYMMETRIC) or ("RS256",),
            "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post",
        )
        self._providers[issuer] = (info, time.monotonic())
        return info

    def authorization_url(
        self, settings: SsoSettings, info: ProviderInfo, redirect_uri: str, state: str, nonce: str, verifier: str
    ) -> str:
        url: str = prepare_grant_uri(
            info.authorization_endpoint,
            settings.client_id,
            "code",
            redirect_uri,
            " ".join(settings.scopes),
            state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return url

    async def exchange(
        self, settings: SsoSettings, info: ProviderInfo, code: str, redirect_uri: str, verifier: str
    ) -> str:
        """The ID token the provider gives for the code."""
        secret = self.environ.get(settings.secret_name(), "")
        if not secret:
            raise SsoRefused("client_secret", f"the console's environment has no {settings.secret_name()}")
        body = prepare_token_request("authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=verifier)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        _, headers, body = ClientAuth(settings.client_id, secret, info.auth_method).prepare(
            "POST", info.token_endpoint, headers, body
        )
        answer = await self._fetch("POST", info.token_endpoint, body, headers)
        token = answer.get("id_token")
        if not isinstance(token, str) or not token:
            raise SsoRefused("id_token", "the provider's token answer has no ID token (is 'openid' in the scopes?)")
        return token

    async def _key_set(self, info: ProviderInfo, kid: str | None) -> KeySet:
        kept = self._keys.get(info.jwks_uri)
        known = kept is not None and (kid is None or any(key.kid == kid for key in kept[0].keys))
        if kept and (known or time.monotonic() - kept[1] < self.jwks_refresh_s):
            return kept[0]
        doc = await self._fetch("GET", info.jwks_uri)
        try:
            keys = KeySet.import_key_set({"keys": [k for k in doc.get("keys", []) if isinstance(k, dict)]})
        except (ValueError, TypeError) as exc:
            raise SsoRefused("provider", f"the provider's keys cannot be read: {exc}") from None
        self._keys[info.jwks_uri] = (keys, time.monotonic())
        return keys

    async def verify(self, settings: SsoSettings, info: ProviderInfo, token: str, nonce: str) -> dict[str, Any]:
        kid = token_header(token).get("kid")
        keys = await self._key_set(info, kid if isinstance(kid, str) else None)
        return verify_id_token(
            token,
            keys,
            issuer=info.issuer,
            client_id=settings.client_id,
            nonce=nonce,
            now=int(time.time()),
            skew_s=self.skew_s,
            algorithms=info.algorithms,
        )
