"""Single sign-on's pure parts: an org's settings as the API and the form take them, the role a token's
claims map to, and the ID token checks (signed here with keys made here; the served console is tested
against a real provider in test_sso.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from console.id_tokens import SsoRefused, verify_id_token
from console.roles import Role
from console.sso_rules import parse_rules, parse_sso, role_for, rules_text, sso_from_form, username_hint
from schemas.errors import SpendstreamError
from tests.oidc_provider import hmac_signed, unsigned

BODY: dict[str, Any] = {
    "issuer": "https://login.hooli.example/",
    "client_id": "console",
    "client_secret": "env:SPENDSTREAM_SECRET_HOOLI_OIDC",
    "rules": [
        {"group": "spend-admins", "role": "admin"},
        {"group": "eng-leads", "role": "manager", "departments": ["eng", "research"]},
        {"email_domain": "Hooli.Example", "role": "viewer"},
    ],
}


def test_settings_are_validated_field_by_field() -> None:
    settings = parse_sso("hooli", BODY, frozenset())
    assert settings.issuer == "https://login.hooli.example" and settings.scopes == ("openid", "email", "profile")
    assert settings.rules[2].value == "hooli.example"
    assert parse_sso("hooli", settings.view(), frozenset()) == settings  # what the API shows, it takes back
    bad = {
        "issuer": {"issuer": "http://login.hooli.example"},  # not https
        "client_secret": {"client_secret": "s3cret-in-the-clear"},
        "rules": {"rules": []},
        "rules[0].role": {"rules": [{"group": "g", "role": "root"}]},
        "rules[0]": {"rules": [{"group": "g", "email_domain": "x.example", "role": "viewer"}]},
        "rules[0].departments": {"rules": [{"group": "g", "role": "viewer", "departments": ["eng"]}]},
        "break_glass": {"required": True},
        "session_minutes": {"session_minutes": 0},
        "nonsense": {"nonsense": 1},
    }
    for field, change in bad.items():
        with pytest.raises(SpendstreamError) as info:
            parse_sso("hooli", {**BODY, **change}, frozenset())
        assert info.value.field == field, change
    with pytest.raises(SpendstreamError, match="loopback"):
        parse_sso("hooli", {**BODY, "issuer": "https://127.0.0.1:8443"}, frozenset())
    assert parse_sso("hooli", {**BODY, "issuer": "http://127.0.0.1:8443"}, frozenset({"127.0.0.1"}))


def test_the_first_matching_rule_gives_the_role_and_only_a_verified_email_counts() -> None:
    settings = parse_sso("hooli", BODY, frozenset())
    both = {"groups": ["eng-leads", "spend-admins"]}
    assert role_for(settings, both) == settings.rules[0]  # the rules' order, not the groups'
    lead = role_for(settings, {"groups": "eng-leads"})
    assert lead is not None and lead.role is Role.MANAGER and lead.departments == ("eng", "research")
    assert role_for(settings, {"email": "x@hooli.example", "email_verified": True}) == settings.rules[2]
    assert role_for(settings, {"email": "x@hooli.example", "email_verified": False}) is None
    assert role_for(settings, {"email": "x@hooli.example"}) is None
    assert role_for(settings, {"groups": ["contractors"], "email": "x@evil.example", "email_verified": True}) is None


def test_the_form_writes_rules_a_line_each() -> None:
    text = "group spend-admins: admin\n# a comment\ngroup eng-leads: manager eng,research\ndomain hooli.example: viewer"
    assert parse_rules(text) == [*BODY["rules"][:2], {"email_domain": "hooli.example", "role": "viewer"}]
    assert rules_text(parse_sso("hooli", BODY, frozenset())) == text.replace("# a comment\n", "")
    with pytest.raises(SpendstreamError, match="line 1"):
        parse_rules("spend-admins = admin")
    form = {**BODY, "rules": text, "required": "on", "break_glass": "hank, olga", "scopes": "openid groups"}
    body = sso_from_form(form)
    assert (
        body["required"] is True and body["break_glass"] == ["hank", "olga"] and body["scopes"] == ["openid", "groups"]
    )


def test_a_username_is_made_from_the_claims_but_is_not_the_identity() -> None:
    assert username_hint({"preferred_username": "Alice Smith", "email": "a@x.example"}) == "Alice_Smith"
    assert username_hint({"email": "alice@hooli.example"}) == "alice.hooli.example"
    assert username_hint({"sub": "00u1abc"}) == "00u1abc"
    assert username_hint({}) == "sso-user"


KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
KEYS = KeySet([KEY])
NOW = int(time.time())


def token(claims: dict[str, Any] | None = None, header: dict[str, Any] | None = None, key: RSAKey = KEY) -> str:
    base = {"iss": "https://idp.example", "aud": "console", "sub": "u1", "nonce": "n1", "iat": NOW, "exp": NOW + 300}
    return jwt.encode({"alg": "RS256", "kid": "k1", **(header or {})}, {**base, **(claims or {})}, key)


def check(value: str) -> dict[str, Any]:
    return verify_id_token(
        value, KEYS, issuer="https://idp.example", client_id="console", nonce="n1", now=NOW, skew_s=60,
        algorithms=["RS256", "HS256"],  # a provider may announce HMAC: it is never accepted for ID tokens here
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (token({"nonce": "n2"}), "nonce"),
        (token({"exp": NOW - 61, "iat": NOW - 400}), "expired"),
        (token({"iat": NOW + 3600, "exp": NOW + 4000}), "expired"),  # issued in the future
        (token({"aud": "another"}), "audience"),
        (token({"aud": ["console", "another"]}), "audience"),  # several audiences and no azp
        (token({"iss": "https://evil.example"}), "issuer"),
        (token(key=RSAKey.generate_key(2048, parameters={"kid": "k1"})), "signature"),
        (token(header={"kid": "k9"}, key=RSAKey.generate_key(2048, parameters={"kid": "k9"})), "signature"),
        (unsigned({"kid": "k1"}, {"iss": "https://idp.example", "aud": "console", "sub": "u1"}), "algorithm"),
        (hmac_signed(KEY.as_pem(private=False), {"kid": "k1"}, {"sub": "u1"}), "algorithm"),
        ("not a token", "id_token"),
        (token({"sub": None}), "id_token"),
    ],
)
def test_an_id_token_that_fails_a_check_is_refused_naming_it(value: str, reason: str) -> None:
    with pytest.raises(SsoRefused) as info:
        check(value)
    assert info.value.field == reason


def test_a_good_id_token_passes_within_the_skew() -> None:
    assert check(token({"exp": NOW - 30}))["sub"] == "u1"  # 30 s late: within the 60 s skew
    assert check(token({"aud": ["console", "api"], "azp": "console"}))["sub"] == "u1"
