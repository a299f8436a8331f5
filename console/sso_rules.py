"""An org's single sign-on settings, and the role a signed-in identity gets from them (pure: no I/O).

An org names its OpenID provider (the issuer), the console's client there (its id, and its secret as an
``env:`` reference under the org's own prefix, as alert channels name theirs), the scopes to ask for, and
rules that map what the ID token says to a console role:

* ``group <name>: <role> [departments]``: the user is in that group (the ``groups_claim`` of the ID
  token, ``groups`` by default: Okta, Keycloak and Entra ID send one when configured to);
* ``domain <example.com>: <role> [departments]``: the user's *verified* email is at that domain (Google
  Workspace sends no groups; ``email_verified`` must be true).

The first rule that matches gives the role; a manager's rule names their departments. No rule matching
is a refusal: the user is not let in, and a user provisioned before is removed (their sessions end and
the API tokens they made are revoked).

``required`` refuses local passwords for the org's users, except the ``break_glass`` owners (audited),
so that a broken provider cannot lock the org out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from console.roles import Role
from schemas.errors import SpendstreamError
from schemas.webhook_targets import InternalTargetError, check_secret_name, check_webhook_url

__all__ = [
    "RoleRule", "SsoSettings", "parse_rules", "parse_sso", "role_for", "rules_text", "sso_from_form", "username_hint",
]  # fmt: skip

_ENV_REF = re.compile(r"env:([A-Z_][A-Z0-9_]{0,127})")
_NAME = re.compile(r"[^\s:,]{1,200}")
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,64}")  # RFC 6749 scope-token
_CLAIM = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]{0,99}")
_USERNAME_BAD = re.compile(r"[^A-Za-z0-9._-]")
MAX_RULES = 100


@dataclass(frozen=True, slots=True)
class RoleRule:
    kind: str  # "group" or "domain"
    value: str  # the group's name, or the email domain (lower case)
    role: Role
    departments: tuple[str, ...] = ()

    def text(self) -> str:
        tail = f" {','.join(self.departments)}" if self.departments else ""
        return f"{self.kind} {self.value}: {self.role.value}{tail}"


@dataclass(frozen=True, slots=True)
class SsoSettings:
    org_id: str
    issuer: str
    client_id: str
    client_secret: str  # "env:NAME", a reference: the secret itself is never stored
    rules: tuple[RoleRule, ...]
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    groups_claim: str = "groups"
    required: bool = False
    break_glass: tuple[str, ...] = ()  # owners who may still sign in with a password
    session_minutes: int = 480

    def secret_name(self) -> str:
        match = _ENV_REF.fullmatch(self.client_secret)
        assert match is not None  # checked by parse_sso
        return match.group(1)

    def view(self) -> dict[str, Any]:
        """As the API shows and takes it (the secret as its reference)."""
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scopes": list(self.scopes),
            "groups_claim": self.groups_claim,
            "rules": [
                {"group" if r.kind == "group" else "email_domain": r.value, "role": r.role.value}
                | ({"departments": list(r.departments)} if r.departments else {})
                for r in self.rules
            ],
            "required": self.required,
            "break_glass": list(self.break_glass),
            "session_minutes": self.session_minutes,
        }


def _text(body: Mapping[str, Any], key: str, limit: int = 500, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise SpendstreamError(key, "required: a non-empty string")
    if len(value) > limit:
        raise SpendstreamError(key, f"at most {limit} characters")
    return value.strip()


def _rule(item: Any, where: str) -> RoleRule:
    if not isinstance(item, Mapping):
        raise SpendstreamError(where, "a rule is an object with 'group' or 'email_domain', and 'role'")
    unknown = set(item) - {"group", "email_domain", "role", "departments"}
    if unknown:
        raise SpendstreamError(f"{where}.{sorted(unknown)[0]}", "not a field of a rule")
    if ("group" in item) == ("email_domain" in item):
        raise SpendstreamError(where, "name either 'group' or 'email_domain'")
    kind, value = ("group", item["group"]) if "group" in item else ("domain", item["email_domain"])
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise SpendstreamError(
            f"{where}.{'group' if kind == 'group' else 'email_domain'}", "1-200 characters, no space"
        )
    if kind == "domain":
        value = value.lower()
        if not _DOMAIN.fullmatch(value):
            raise SpendstreamError(f"{where}.email_domain", f"{value!r} is not a domain name")
    try:
        role = Role(str(item.get("role")))
    except ValueError:
        raise SpendstreamError(f"{where}.role", f"one of {', '.join(r.value for r in Role)}") from None
    departments = item.get("departments", [])
    if not isinstance(departments, list) or not all(isinstance(d, str) and _NAME.fullmatch(d) for d in departments):
        raise SpendstreamError(f"{where}.departments", "a list of department ids")
    if role is Role.MANAGER and not departments:
        raise SpendstreamError(f"{where}.departments", "a manager's rule names at least one department")
    if role is not Role.MANAGER and departments:
        raise SpendstreamError(f"{where}.departments", "only a manager's rule names departments")
    return RoleRule(kind, value, role, tuple(departments))


def _issuer(body: Mapping[str, Any], allow: frozenset[str]) -> str:
    issuer = _text(body, "issuer").rstrip("/")
    try:
        host = check_webhook_url(issuer, allow)
    except InternalTargetError as exc:
        raise SpendstreamError("issuer", str(exc)) from None
    parts = urlsplit(issuer)
    if parts.scheme != "https" and host not in allow:
        raise SpendstreamError("issuer", "must be an https URL")
    if parts.query or parts.fragment:
        raise SpendstreamError("issuer", "must have no query or fragment")
    return issuer


def _secret(org_id: str, body: Mapping[str, Any]) -> str:
    secret = _text(body, "client_secret", 200)
    match = _ENV_REF.fullmatch(secret)
    if match is None:
        raise SpendstreamError("client_secret", "a reference to the console's environment: env:NAME")
    try:
        check_secret_name(org_id, match.group(1))
    except InternalTargetError as exc:
        raise SpendstreamError("client_secret", str(exc)) from None
    return secret


def _scopes(body: Mapping[str, Any]) -> tuple[str, ...]:
    scopes = body.get("scopes", ["openid", "email", "profile"])
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(scopes, list) or not all(isinstance(s, str) and _SCOPE.fullmatch(s) for s in scopes):
        raise SpendstreamError("scopes", "a list of scope names")
    if "openid" not in scopes:
        raise SpendstreamError("scopes", "must include openid")
    return tuple(dict.fromkeys(scopes))


def parse_sso(org_id: str, body: Mapping[str, Any], allow: frozenset[str]) -> SsoSettings:
    """Validate an org's settings; raises :class:`SpendstreamError` naming the field.

    The issuer is a URL the console will fetch, so, as for a webhook, it may not name an internal host
    unless the operator's allow-list (``console.oidc_allow_hosts``) does, and it must be https unless so
    allowed (a test provider on loopback)."""
    known = {
        "issuer", "client_id", "client_secret", "scopes", "groups_claim", "rules", "required", "break_glass",
        "session_minutes",
    }  # fmt: skip
    unknown = set(body) - known
    if unknown:
        raise SpendstreamError(sorted(unknown)[0], "not a field of the single sign-on settings")
    issuer = _issuer(body, allow)
    client_id = _text(body, "client_id", 200)
    secret = _secret(org_id, body)
    scopes = _scopes(body)
    claim = body.get("groups_claim", "groups")
    if not isinstance(claim, str) or not _CLAIM.fullmatch(claim):
        raise SpendstreamError("groups_claim", "a claim name")
    raw_rules = body.get("rules", [])
    if not isinstance(raw_rules, list) or not raw_rules or len(raw_rules) > MAX_RULES:
        raise SpendstreamError("rules", f"a list of 1 to {MAX_RULES} rules mapping a group or email domain to a role")
    rules = tuple(_rule(item, f"rules[{i}]") for i, item in enumerate(raw_rules))
    required = body.get("required", False)
    if not isinstance(required, bool):
        raise SpendstreamError("required", "true or false")
    glass = body.get("break_glass", [])
    if not isinstance(glass, list) or not all(isinstance(u, str) and u for u in glass) or len(glass) > 5:
        raise SpendstreamError("break_glass", "a list of at most 5 usernames")
    if required and not glass:
        raise SpendstreamError("break_glass", "requiring single sign-on, name an owner who keeps a password")
    minutes = body.get("session_minutes", 480)
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 5 <= minutes <= 1440:
        raise SpendstreamError("session_minutes", "whole minutes from 5 to 1440 (a day)")
    return SsoSettings(org_id, issuer, client_id, secret, rules, scopes, claim, required, tuple(glass), minutes)


def parse_rules(text: str) -> list[dict[str, Any]]:
    """The rules as the console's form writes them, one a line: ``group NAME: ROLE [DEPT,DEPT]`` or
    ``domain example.com: ROLE``; into the API's shape (validated by :func:`parse_sso`)."""
    out: list[dict[str, Any]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, sep, tail = line.rpartition(":")
        kind, _, value = head.strip().partition(" ")
        words = tail.split()
        if not sep or kind not in ("group", "domain") or not value.strip() or not 1 <= len(words) <= 2:
            raise SpendstreamError(
                "rules", f"line {number}: write 'group NAME: ROLE [DEPARTMENTS]' or 'domain NAME: ROLE'"
            )
        rule: dict[str, Any] = {"group" if kind == "group" else "email_domain": value.strip(), "role": words[0]}
        if len(words) == 2:
            rule["departments"] = [d for d in words[1].split(",") if d]
        out.append(rule)
    return out


def sso_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The Access page's form as the API's body (validated by :func:`parse_sso`)."""
    minutes = str(form.get("session_minutes", "") or "480").strip()
    if not minutes.isdigit():
        raise SpendstreamError("session_minutes", "whole minutes from 5 to 1440 (a day)")
    return {
        "issuer": str(form.get("issuer", "")),
        "client_id": str(form.get("client_id", "")),
        "client_secret": str(form.get("client_secret", "")).strip(),
        "scopes": str(form.get("scopes", "") or "openid email profile").split(),
        "groups_claim": str(form.get("groups_claim", "") or "groups").strip(),
        "rules": parse_rules(str(form.get("rules", ""))),
        "required": form.get("required") == "on",
        "break_glass": [u for u in str(form.get("break_glass", "")).replace(",", " ").split() if u],
        "session_minutes": int(minutes),
    }


def rules_text(settings: SsoSettings | None) -> str:
    return "\n".join(rule.text() for rule in settings.rules) if settings else ""


def _groups(claims: Mapping[str, Any], claim: str) -> set[str]:
    value = claims.get(claim, [])
    if isinstance(value, str):
        return {value}
    if isinstance(value, Sequence):
        return {g for g in value if isinstance(g, str)}
    return set()


def role_for(settings: SsoSettings, claims: Mapping[str, Any]) -> RoleRule | None:
    """The first rule the verified claims match, or None (the user is refused)."""
    groups = _groups(claims, settings.groups_claim)
    email = claims.get("email")
    domain = ""
    if isinstance(email, str) and claims.get("email_verified") is True and email.count("@") == 1:
        domain = email.rsplit("@", 1)[1].lower()
    for rule in settings.rules:
        if (rule.kind == "group" and rule.value in groups) or (rule.kind == "domain" and rule.value == domain):
            return rule
    return None


def username_hint(claims: Mapping[str, Any]) -> str:
    """A readable username for a new user: the provider's preferred name, else the email, else the subject;
    only what a console username may hold. The identity is (issuer, subject), never this name."""
    for key in ("preferred_username", "email", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            name = _USERNAME_BAD.sub("_", value.strip().replace("@", "."))[:56].strip("._-")
            if name:
                return name
    return "sso-user"
