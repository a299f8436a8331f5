"""Single sign-on against a real OpenID provider (oidc-provider under Node, tests/oidc_provider.py): the org
hooli requires it, with rules mapping the provider's groups to console roles.

Signing in goes through the provider's own login page, by HTTP here and in Debian's chromium in
test_sso_browser.py. Every refusal (an unmapped group, a tampered state, a replayed code, an ID token with
the wrong nonce, expired, for another audience, unsigned, signed with HMAC over the public key or by
another key) is checked three ways: the page says why, no session is opened, and the audit trail has it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page

from console.access_store import AccessStore
from tests.console.conftest import PASSWORD, Console
from tests.console.test_browser import SHOTS, sign_in
from tests.oidc_provider import CLIENT_ID, OidcProvider, hmac_signed, new_key, oidc_provider, provider_sign_in

pytestmark = pytest.mark.stack

ACCOUNTS: dict[str, dict[str, Any]] = {  # the provider's users: login -> claims
    "alice": {"preferred_username": "alice", "email": "alice@hooli.example", "email_verified": True,
              "groups": ["spend-admins", "everyone"]},
    "bob": {"preferred_username": "bob", "email": "bob@contractor.example", "email_verified": True,
            "groups": ["contractors"]},
    "carol": {"preferred_username": "carol", "groups": ["eng-leads"]},
    "dave": {"preferred_username": "dave", "groups": ["spend-owners"]},
    "erin": {"preferred_username": "erin", "groups": ["spend-admins"]},
    "frank": {"preferred_username": "frank", "groups": ["finance"]},
    "holly": {"preferred_username": "holly", "groups": ["finance"]},  # a local user's name, another identity
}  # fmt: skip
RULES = [
    {"group": "spend-owners", "role": "owner"},
    {"group": "spend-admins", "role": "admin"},
    {"group": "finance", "role": "finance"},
    {"group": "eng-leads", "role": "manager", "departments": ["eng"]},
]


def settings(provider: OidcProvider, **changes: Any) -> dict[str, Any]:
    return {
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": "env:SPENDSTREAM_SECRET_HOOLI_OIDC",
        "scopes": ["openid", "email", "profile", "groups"],
        "rules": RULES,
        "required": True,
        "break_glass": ["hank"],
        **changes,
    }


@pytest.fixture(scope="module")
def provider(console: Console, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    home = tmp_path_factory.mktemp("oidc")
    with oidc_provider(home, console.url + "/login/sso/callback", console.url + "/login", ACCOUNTS) as running:
        hank = console.signed_in("hank")
        saved = hank.put("/api/v1/sso", json=settings(running), headers={"x-csrf-token": console.csrf(hank)})
        assert saved.status_code == 200, saved.text
        yield running


def audit(console: Console, action: str) -> list[dict[str, Any]]:
    hank = console.signed_in("hank")
    entries = hank.get("/api/v1/audit", params={"limit": 200}).json()["items"]
    return [e for e in entries if e["action"] == action]


def sso(console: Console, login: str) -> tuple[httpx.Client, httpx.Response]:
    """A new browser signs in as ``login`` at the provider; returns it and the console's answer to the callback."""
    client = httpx.Client(timeout=30, follow_redirects=False)
    back = provider_sign_in(client, f"{console.url}/login/sso?org=hooli&next=/billing/costs", login)
    return client, client.get(back.headers["location"])


def refused(console: Console, client: httpx.Client, answer: httpx.Response, reason: str) -> None:
    """The refusal as a user and an auditor see it, and no session."""
    assert answer.status_code in (403, 404), answer.text
    assert 'data-testid="sso-reason"' in answer.text
    assert "spendstream_session" not in answer.cookies
    assert client.get(console.url + "/api/v1/me").status_code == 401
    latest = audit(console, "sso.refused")[0]
    assert latest["after"]["reason"] == reason, latest


def test_settings_are_checked_against_the_org_and_its_owners(console: Console, provider: OidcProvider) -> None:
    hank = console.signed_in("hank")
    csrf = {"x-csrf-token": console.csrf(hank)}
    cases = {
        "client_secret": settings(provider, client_secret="env:SPENDSTREAM_SECRET_ACME_OIDC"),  # acme's secret
        "break_glass": settings(provider, break_glass=["holly"]),  # not an owner
        "rules[3].departments": settings(provider, rules=[*RULES[:3], {"group": "x", "role": "manager"}]),
        "issuer": settings(provider, issuer="http://10.0.0.7/realms/x"),  # internal, and not allow-listed
        "scopes": settings(provider, scopes=["email"]),
    }
    for field, body in cases.items():
        answer = hank.put("/api/v1/sso", json=body, headers=csrf)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["field"] == field
    clash = AccessStore(console.database)  # an org whose secrets' prefix is hooli's: SPENDSTREAM_SECRET_HOOLI_
    clash.create_user("HOOLI", "hal", "a password long enough", "owner")
    try:
        answer = hank.put("/api/v1/sso", json=settings(provider), headers=csrf)
        assert answer.status_code == 400 and answer.json()["error"]["field"] == "client_secret", answer.text
    finally:
        clash.delete_user("HOOLI", "hal")
    shown = hank.get("/api/v1/sso").json()["sso"]
    assert shown["issuer"] == provider.issuer and shown["client_secret"] == "env:SPENDSTREAM_SECRET_HOOLI_OIDC"
    assert console.signed_in("victor").get("/api/v1/sso").status_code == 403  # acme's viewer
    assert console.signed_in("gary").get("/api/v1/sso").json() == {"sso": None}  # globex sees its own: none


def test_a_mapped_user_is_provisioned_with_the_role_of_their_group(console: Console, provider: OidcProvider) -> None:
    client, answer = sso(console, "alice")
    assert answer.status_code == 303 and answer.headers["location"] == "/billing/costs"
    me = client.get(console.url + "/api/v1/me").json()
    assert me == {"org": "hooli", "name": "alice", "role": "admin", "departments": []}
    again, _ = sso(console, "alice")  # the same identity: the same user, not a new one
    assert again.get(console.url + "/api/v1/me").json()["name"] == "alice"
    assert [e["target"] for e in audit(console, "user.create")].count("alice") == 1
    signed = audit(console, "sso.sign_in")[0]
    assert signed["actor"] == "alice" and signed["after"]["rule"] == "group spend-admins: admin"
    carol, _ = sso(console, "carol")
    assert carol.get(console.url + "/api/v1/me").json()["departments"] == ["eng"]


def test_an_identity_is_its_subject_not_its_name(console: Console, provider: OidcProvider) -> None:
    """The provider's holly is not hooli's local holly: she gets a name of her own and nothing of holly's."""
    client, answer = sso(console, "holly")
    assert answer.status_code == 303
    me = client.get(console.url + "/api/v1/me").json()
    assert me["name"] == "holly-2" and me["role"] == "finance"


def test_an_unmapped_group_is_refused_with_a_clear_page(console: Console, provider: OidcProvider) -> None:
    client, answer = sso(console, "bob")
    assert "in no group" in answer.text
    refused(console, client, answer, "unmapped")


def test_passwords_are_refused_but_the_audited_break_glass_owner(console: Console, provider: OidcProvider) -> None:
    client = httpx.Client(base_url=console.url, timeout=30, follow_redirects=False)
    page = client.get("/login")
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/login", data={"username": "holly", "password": PASSWORD, "csrf": token, "org": "hooli"})
    assert answer.status_code == 403 and "identity provider" in answer.text
    assert audit(console, "sso.password_refused")[0]["target"] == "holly"
    console.signed_in("hank")  # the break-glass owner still may
    assert audit(console, "sso.break_glass")[0]["actor"] == "hank"


TAMPERS: dict[str, tuple[str, Callable[[OidcProvider], Any]]] = {  # case: (reason, tamper)
    "wrong nonce": ("nonce", lambda p: lambda h, c: (h, {**c, "nonce": "another sign-in's"}, p.keys[0])),
    "expired": ("expired", lambda p: lambda h, c: (h, {**c, "iat": c["iat"] - 7200, "exp": c["iat"] - 3600},
                                                   p.keys[0])),
    "wrong audience": ("audience", lambda p: lambda h, c: (h, {**c, "aud": "another-client"}, p.keys[0])),
    "alg none": ("algorithm", lambda p: lambda h, c: (h, c, None)),
    "HMAC over the public key": ("algorithm",
                                 lambda p: lambda h, c: hmac_signed(p.keys[0].as_pem(private=False), h, c)),
    "another key, same kid": ("signature", lambda p: lambda h, c: (h, c, new_key(h["kid"]))),
    "an unknown kid": ("signature", lambda p: lambda h, c: ({**h, "kid": "made-up"}, c, new_key("made-up"))),
}  # fmt: skip


@pytest.mark.parametrize("case", list(TAMPERS))
def test_a_tampered_id_token_is_refused_and_audited(console: Console, provider: OidcProvider, case: str) -> None:
    reason, make = TAMPERS[case]
    provider.tamper = make(provider)
    try:
        client, answer = sso(console, "erin")
    finally:
        provider.tamper = None
    refused(console, client, answer, reason)


def test_a_tampered_state_and_a_replayed_code_are_refused(console: Console, provider: OidcProvider) -> None:
    client = httpx.Client(timeout=30, follow_redirects=False)
    back = httpx.URL(provider_sign_in(client, f"{console.url}/login/sso?org=hooli", "erin").headers["location"])
    flow = client.cookies["spendstream_sso"]
    tampered = back.copy_set_param("state", "not-the-state-this-browser-began-with")
    refused(console, client, client.get(tampered), "state")
    client.cookies.set(
        "spendstream_sso", flow, domain="127.0.0.1"
    )  # the same browser's flow again, with the right state now
    refused(console, client, client.get(back), "replayed")  # a flow is used once, even by a refusal
    # the code in a new flow (its own cookie and state): the provider refuses a code it has given out once,
    # and one not bound to this flow's PKCE verifier
    fresh = client.get(f"{console.url}/login/sso?org=hooli")
    state = httpx.URL(fresh.headers["location"]).params["state"]
    refused(console, client, client.get(back.copy_set_param("state", state)), "provider")


def test_a_group_taken_away_ends_access_and_revokes_tokens(console: Console, provider: OidcProvider) -> None:
    dave, _ = sso(console, "dave")
    page = dave.get(console.url + "/billing/access")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    made = dave.post(console.url + "/billing/access", data={"csrf": csrf, "name": "dave-ci", "role": "admin"})
    token = made.text.split('data-testid="new-token">', 1)[1].split("<", 1)[0]
    bearer = {"authorization": f"Bearer {token}"}
    assert httpx.get(console.url + "/api/v1/me", headers=bearer).status_code == 200
    provider.set_accounts({**ACCOUNTS, "dave": {"preferred_username": "dave", "groups": ["finance"]}})
    demoted, _ = sso(console, "dave")  # a role change at the provider: the new role at the next sign-in
    assert demoted.get(console.url + "/api/v1/me").json()["role"] == "finance"
    change = audit(console, "sso.role_change")[0]
    assert (change["before"]["role"], change["after"]["role"]) == ("owner", "finance")
    narrowed = httpx.get(console.url + "/api/v1/me", headers=bearer).json()
    assert narrowed["role"] == "finance"  # a token never does more than its maker now may
    provider.set_accounts({**ACCOUNTS, "dave": {"preferred_username": "dave", "groups": []}})
    try:
        client, answer = sso(console, "dave")
        refused(console, client, answer, "unmapped")
    finally:
        provider.set_accounts(ACCOUNTS)
    assert dave.get(console.url + "/api/v1/me").status_code == 401  # his earlier session has ended
    assert httpx.get(console.url + "/api/v1/me", headers=bearer).status_code == 401  # and his token
    removed = audit(console, "user.delete")[0]
    assert removed["target"] == "dave" and removed["after"]["tokens"] == "revoked"


def test_sign_out_also_signs_out_at_the_provider(console: Console, provider: OidcProvider) -> None:
    client, _ = sso(console, "frank")
    page = client.get(console.url + "/billing")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    out = client.post(console.url + "/logout", data={"csrf": csrf})
    assert out.status_code == 303
    location = httpx.URL(out.headers["location"])
    assert str(location).startswith(provider.issuer + "/session/end")
    assert location.params["post_logout_redirect_uri"] == console.url + "/login"
    assert client.get(console.url + "/api/v1/me").status_code == 401
    confirm = client.get(location)  # the provider's own sign-out page
    assert confirm.status_code == 200 and "logout" in confirm.text.lower()


def test_a_rotated_provider_key_is_fetched_on_its_first_use(console: Console, provider: OidcProvider) -> None:
    provider.rotate(new_key(f"k-{int(time.time())}"))
    client, answer = sso(console, "alice")
    assert answer.status_code == 303, answer.text
    assert client.get(console.url + "/api/v1/me").json()["role"] == "admin"


def browser_sso(browser: Browser, console: Console, login: str) -> Page:
    """In Debian's chromium: the console's sign-in page, then the provider's own login page."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(console.url + "/billing")
    page.get_by_label("Organisation", exact=True).fill("hooli")
    page.get_by_role("button", name="Continue with single sign-on").click()
    page.wait_for_url(provider_url(console, page), wait_until="domcontentloaded")
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.wait_for_url(console.url + "/**", wait_until="domcontentloaded")
    return page


def provider_url(console: Console, page: Page) -> Callable[[str], bool]:
    return lambda url: not url.startswith(console.url)


def test_in_a_browser_a_mapped_user_lands_on_the_overview_and_an_unmapped_one_is_told_why(
    browser: Browser, console: Console, provider: OidcProvider
) -> None:
    page = browser_sso(browser, console, "carol")
    assert page.url == console.url + "/billing"
    assert page.get_by_text("carol · hooli · manager").is_visible()
    page.screenshot(path=str(SHOTS / "sso-signed-in.png"), full_page=True)
    refused_page = browser_sso(browser, console, "bob")
    assert "/login/sso/callback" in refused_page.url
    assert refused_page.get_by_role("heading", name="You were not signed in").is_visible()
    assert "in no group" in refused_page.get_by_test_id("sso-reason").inner_text()
    refused_page.screenshot(path=str(SHOTS / "sso-refused.png"), full_page=True)
    assert not serious_violations(refused_page)


def serious_violations(page: Page) -> list[str]:
    results = Axe().run(page)
    return [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def test_the_owner_sets_single_sign_on_on_the_access_page(
    browser: Browser, console: Console, provider: OidcProvider
) -> None:
    page = sign_in(browser, console, "hank")
    page.goto(console.url + "/billing/access")
    assert "passwords are refused except for hank" in page.get_by_test_id("sso-state").inner_text()
    assert page.get_by_label("Role rules", exact=False).input_value().startswith("group spend-owners: owner")
    page.get_by_label("Session minutes").fill("240")
    page.get_by_role("button", name="Save single sign-on").click()
    assert page.get_by_role("status").inner_text() == "Saved single sign-on."
    assert console.signed_in("hank").get("/api/v1/sso").json()["sso"]["session_minutes"] == 240
    page.get_by_label("Session minutes").fill("1")
    page.get_by_role("button", name="Save single sign-on").click()
    assert "session_minutes" in page.get_by_role("alert").inner_text()
    page.goto(console.url + "/billing/access")
    page.screenshot(path=str(SHOTS / "access-sso.png"), full_page=True)
    assert not serious_violations(page)
