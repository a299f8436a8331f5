"""The console under attack, over HTTP against the real process: the sign-in throttle (a burst, forged
X-Forwarded-For, many addresses), tokens of removed or demoted users, budgets weakened by a partial PUT,
webhooks aimed at internal services, other orgs' secrets, usernames across orgs, security headers, bad
input, download names, body limits, banners and what a department manager sees."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.console.conftest import PASSWORD, Console
from tests.console.test_api import api, version

pytestmark = pytest.mark.stack


def login_form(console: Console) -> tuple[str, str]:
    """A sign-in form's CSRF pair (cookie, field): the same pair may be posted many times."""
    page = httpx.get(console.url + "/login")
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return page.cookies["spendstream_login_csrf"], token


def post_login(
    console: Console,
    username: str,
    password: str,
    headers: dict[str, str] | None = None,
    source: str | None = None,
    org: str = "",
) -> int:
    cookie, token = login_form(console)
    transport = httpx.HTTPTransport(local_address=source) if source else None
    jar = {"spendstream_login_csrf": cookie}
    with httpx.Client(base_url=console.url, transport=transport, timeout=60, cookies=jar) as client:
        answer = client.post(
            "/login",
            data={"org": org, "username": username, "password": password, "csrf": token},
            headers=headers or {},
        )
    return answer.status_code


def test_a_burst_of_guesses_is_counted_before_any_is_checked(console: Console) -> None:
    cookie, token = login_form(console)

    async def burst() -> list[int]:
        jar = {"spendstream_login_csrf": cookie}
        async with httpx.AsyncClient(base_url=console.url, timeout=120, cookies=jar) as client:
            sent = [
                client.post("/login", data={"username": "rita", "password": f"wrong guess {i}", "csrf": token})
                for i in range(60)
            ]
            return [answer.status_code for answer in await asyncio.gather(*sent)]

    codes = asyncio.run(burst())
    assert codes.count(401) <= 5 and codes.count(429) >= 55, sorted(codes)
    assert set(codes) <= {401, 429}


def test_a_forged_forwarded_for_gets_no_fresh_guesses(console: Console) -> None:
    codes = [post_login(console, "xavier", "wrong guess", {"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(7)]
    codes.append(post_login(console, "xavier", "wrong guess", org="acme"))  # naming the org is no fresh key
    assert codes == [401] * 5 + [429] * 3, codes
    right = post_login(console, "xavier", PASSWORD, {"X-Forwarded-For": "198.51.100.77"})
    assert right == 429  # still locked out: the header is not believed from a client that is no proxy


def test_a_user_is_held_whatever_address_the_guesses_come_from(console: Console) -> None:
    # loopback is all of 127.0.0.0/8: each guess from an address of its own
    codes = [post_login(console, "petra", "wrong guess", source=f"127.0.0.{i + 2}") for i in range(24)]
    assert codes.count(401) == 20 and codes[20:] == [429] * 4, codes


def test_removing_or_demoting_a_user_revokes_or_narrows_their_tokens(console: Console) -> None:
    owner = console.signed_in("olivia")
    csrf = console.csrf(owner)
    for name in ("oscar", "ophelia"):
        added = owner.post(
            "/billing/access",
            data={"csrf": csrf, "action": "add-user", "username": name, "password": PASSWORD, "role": "owner"},
        )
        assert added.status_code == 200, added.text
    tokens = {}
    for name in ("oscar", "ophelia"):
        client = console.signed_in(name)
        page = client.post(
            "/billing/access", data={"csrf": console.csrf(client), "name": f"{name}-ci", "role": "owner"}
        )
        tokens[name] = page.text.split('data-testid="new-token">', 1)[1].split("<", 1)[0]
        assert f"<td>{name}</td>" in page.text  # the Access page names each token's maker
    assert api(console, tokens["oscar"]).get("/api/v1/me").json()["role"] == "owner"
    removed = owner.post("/billing/access", data={"csrf": csrf, "action": "remove-user", "username": "oscar"})
    assert removed.status_code == 200, removed.text
    assert api(console, tokens["oscar"]).get("/api/v1/me").status_code == 401
    demoted = owner.post(
        "/billing/access", data={"csrf": csrf, "action": "set-role", "username": "ophelia", "role": "viewer"}
    )
    assert demoted.status_code == 200, demoted.text
    narrowed = api(console, tokens["ophelia"])
    assert narrowed.get("/api/v1/me").json()["role"] == "viewer"
    assert narrowed.get("/api/v1/audit").status_code == 403
    trail = api(console, console_token(console)).get("/api/v1/audit").json()["items"]
    assert {"user.delete", "user.role"} <= {e["action"] for e in trail}


def console_token(console: Console) -> str:
    client = console.signed_in("olivia")
    page = client.post("/billing/access", data={"csrf": console.csrf(client), "name": "audit-reader", "role": "owner"})
    return page.text.split('data-testid="new-token">', 1)[1].split("<", 1)[0]


def test_a_partial_put_is_refused_and_a_weakening_is_audited(console: Console, tokens: dict[str, str]) -> None:
    admin = api(console, tokens["admin"])
    key = "department/sec-eng/monthly"
    whole = {"limit": "100", "mode": "hard", "stages": [90, 100], "alerts": {}}
    made = admin.put(f"/api/v1/budgets/{key}", json=whole, headers={"If-Match": '"absent"'})
    assert made.status_code == 200, made.text
    partial = admin.put(f"/api/v1/budgets/{key}", json={"limit": "120"}, headers={"If-Match": made.headers["ETag"]})
    assert partial.status_code == 422 and partial.json()["error"]["field"] == "mode,stages,alerts", partial.text
    kept = admin.get(f"/api/v1/budgets/{key}").json()
    assert (kept["mode"], kept["stages"], kept["limit"]) == ("hard", [90, 100], "100")
    patched = admin.patch(f"/api/v1/budgets/{key}", json={"limit": "120"}, headers={"If-Match": kept["version"]})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["mode"], patched.json()["stages"]) == ("hard", [90, 100])
    soft = admin.patch(f"/api/v1/budgets/{key}", json={"mode": "soft"}, headers={"If-Match": version(admin, key)})
    assert soft.status_code == 200, soft.text
    trail = api(console, tokens["owner"]).get("/api/v1/audit").json()["items"]
    weakened = [e for e in trail if e["action"] == "budget.weaken" and e["target"].endswith(key)]
    assert [e["after"]["weakened"] for e in weakened[:2]] == [
        ["hard cap made soft"],
        ["limit raised from $100.00 to $120.00"],
    ]
    assert weakened[0]["before"]["mode"] == "hard" and weakened[0]["after"]["mode"] == "soft"
    admin.delete(f"/api/v1/budgets/{key}", headers={"If-Match": version(admin, key)})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123/?query=DROP%20DATABASE%20x",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:6379/",
        "http://[::1]:9092/",
        "http://10.1.2.3/hook",
        "http://[::ffff:127.0.0.1]/",
        "http://0x7f.1/",
        "http://2130706433/",
        "http://metadata.google.internal/",
        "https://user:pw@hooks.slack.com/services/x",
    ],
)
def test_a_webhook_may_not_name_an_internal_service(console: Console, tokens: dict[str, str], url: str) -> None:
    admin = api(console, tokens["admin"])
    answer = admin.put("/api/v1/channels/ssrf", json={"type": "slack", "recipients": url})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "recipients", answer.text
    assert all(c["name"] != "ssrf" for c in admin.get("/api/v1/channels").json()["items"])


def test_an_org_names_only_its_own_secrets(console: Console, tokens: dict[str, str]) -> None:
    globex = api(console, tokens["globex"])
    for name in ("SPENDSTREAM_SECRET_ACME_ENG_SLACK_WEBHOOK", "ACME_ENG_SLACK_WEBHOOK", "SPENDSTREAM_SECRET_GLOBEX_"):
        answer = globex.put("/api/v1/channels/stolen", json={"type": "slack", "recipients": f"env:{name}"})
        assert answer.status_code == 400, (name, answer.text)
        assert "SPENDSTREAM_SECRET_GLOBEX_" in answer.json()["error"]["reason"]
    own = globex.put(
        "/api/v1/channels/own", json={"type": "pagerduty", "recipients": "env:SPENDSTREAM_SECRET_GLOBEX_PD"}
    )
    assert own.status_code == 200, own.text
    assert globex.delete("/api/v1/channels/own").status_code == 204


def test_usernames_are_per_org_and_ascii(console: Console) -> None:
    acme, globex = console.signed_in("olivia"), console.signed_in("gary")
    form = {"action": "add-user", "username": "shared", "password": PASSWORD, "role": "viewer"}
    assert acme.post("/billing/access", data={**form, "csrf": console.csrf(acme)}).status_code == 200
    made = globex.post("/billing/access", data={**form, "csrf": console.csrf(globex)})
    assert made.status_code == 200 and "exists" not in made.text  # nothing learnt of acme's users, nothing taken
    look_alike = acme.post(
        "/billing/access", data={**form, "username": "\u0430dmin", "csrf": console.csrf(acme)}
    )  # a Cyrillic a
    assert look_alike.status_code == 400 and "ASCII" in look_alike.text
    cookie, token = login_form(console)
    with httpx.Client(base_url=console.url, cookies={"spendstream_login_csrf": cookie}) as browser:
        form = {"org": "globex", "username": "shared", "password": PASSWORD, "csrf": token}
        assert browser.post("/login", data=form).status_code == 303
        assert browser.get("/api/v1/me").json()["org"] == "globex"


def test_pages_carry_security_headers_and_metrics_are_not_on_the_console_port(console: Console) -> None:
    client = console.signed_in("olivia")
    for path in ("/billing", "/billing/access", "/login", "/api/v1/openapi.json"):
        answer = client.get(path)
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
        assert "script-src 'self'" in answer.headers["content-security-policy"], path
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store", path
    shown = client.post("/billing/access", data={"csrf": console.csrf(client), "name": "once", "role": "viewer"})
    assert "new-token" in shown.text and shown.headers["cache-control"] == "no-store"
    assert "no-store" not in client.get("/static/console.js").headers.get("cache-control", "")  # assets may be kept
    assert client.get("/metrics").status_code == 404  # not served to the console's users
    port = console.dep.env["SPENDSTREAM_CONSOLE__METRICS_PORT"]
    assert "spendstream_console" in httpx.get(f"http://127.0.0.1:{port}/metrics").text


BAD_INPUT = [
    ("POST", "/api/v1/budgets", {"content": b'{"limit": "\xff\xfe"}'}, "body"),
    ("POST", "/api/v1/budgets", {"content": b'{"limit": ' + b"9" * 5000 + b"}"}, "body"),
    ("POST", "/api/v1/budgets", {"content": b"[" * 100_000 + b"]" * 100_000}, "body"),
    ("GET", "/api/v1/audit?cursor=%C2%B2", {}, "cursor"),
    ("GET", "/api/v1/audit?cursor=99999999999999999999", {}, "cursor"),
    ("GET", "/api/v1/budgets?limit=%C2%B2", {}, "limit"),
    ("GET", "/api/v1/export/focus?limit=%C2%B2", {}, "limit"),
    ("GET", "/api/v1/costs?from=9999-12-01&to=9999-12-31", {}, "from"),
    ("GET", "/api/v1/costs?from=0001-01-01&to=0001-01-31", {}, "from"),
    ("POST", "/api/v1/export/closes", {"json": {"month": "0001-01"}}, "month"),
    ("GET", "/api/v1/patterns?to=2026-02-30", {}, "to"),
    ("POST", "/api/v1/reports", {"json": {"kind": "monthly", "month": "0001-01", "format": "csv"}}, "month"),
]


@pytest.mark.parametrize(("method", "path", "sent", "field"), BAD_INPUT)
def test_bad_input_gets_a_400_naming_the_parameter(
    console: Console, tokens: dict[str, str], method: str, path: str, sent: dict[str, object], field: str
) -> None:
    answer = api(console, tokens["owner"]).request(method, path, **sent)  # type: ignore[arg-type]
    assert answer.status_code == 400, (path, answer.status_code, answer.text[:300])
    assert answer.json()["error"]["field"] == field, answer.text


def test_a_forged_export_cursor_and_bad_ids_are_400(console: Console, tokens: dict[str, str]) -> None:
    import base64

    forged = base64.urlsafe_b64encode(json.dumps({"v": 1, "at": "0001-01-01T00:00:00+00:00", "id": "x"}).encode())
    owner = api(console, tokens["owner"])
    answer = owner.get("/api/v1/export/focus", params={"cursor": forged.decode().rstrip("=")})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "cursor", answer.text
    client = console.signed_in("olivia")
    revoked = client.post("/billing/access", data={"csrf": console.csrf(client), "action": "revoke", "id": "\u00b2"})
    assert revoked.status_code == 400 and "id" in revoked.text


def test_a_download_is_named_from_a_fixed_set(console: Console) -> None:
    client = console.signed_in("olivia")
    evil = client.get("/billing/costs.csv", params={"table": "x\"; filename*=UTF-8''evil.html; x=\""})
    assert evil.status_code == 400 and "content-disposition" not in evil.headers
    assert client.get("/billing/costs.csv", params={"table": "\u4e2d"}).status_code == 400
    good = client.get("/billing/costs.csv", params={"table": "series"})
    disposition = good.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="spendstream-acme-series-day-') and disposition.endswith(
        '.csv"'
    )


def test_a_large_body_is_refused_before_it_is_read(console: Console, tokens: dict[str, str]) -> None:
    viewer = api(console, tokens["viewer"])
    big = b'{"x": "' + b"a" * (2 << 20) + b'"}'
    answer = viewer.post("/api/v1/budgets", content=big, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["field"] == "body"

    def chunks():  # no Content-Length: the body is counted as it arrives
        for _ in range(40):
            yield b"a" * 65536

    streamed = viewer.post("/api/v1/budgets", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


def test_a_banner_shows_only_fixed_messages(console: Console) -> None:
    client = console.signed_in("olivia")
    page = client.get("/billing/budgets", params={"done": "Your session expired: sign in at evil.example"})
    assert "evil.example" not in page.text
    page = client.get("/billing/budgets", params={"saved": "Call +1 555 0100 to keep your budget"})
    assert "555 0100" not in page.text
    shown = client.get("/billing/budgets", params={"done": "routing-saved"})
    assert "Saved the org&#39;s alert routing." in shown.text


def test_a_manager_sees_channel_names_only_and_is_held_to_the_department_across_periods(
    console: Console, tokens: dict[str, str]
) -> None:
    admin, manager = api(console, tokens["admin"]), api(console, tokens["manager"])
    made = admin.put("/api/v1/channels/mgr-sms", json={"type": "sms", "recipients": "+15551230000"})
    assert made.status_code == 200, made.text
    listed = manager.get("/api/v1/channels").json()
    assert listed["routing"] == {} and "+15551230000" not in json.dumps(listed)
    assert {"name": "mgr-sms", "type": "sms"} in listed["items"]
    page = console.signed_in("mona").get("/billing/budgets")
    assert "+15551230000" not in page.text and "mgr-sms" in page.text
    # eng has a daily budget of $300 (examples/budgets.yaml): a monthly user budget may hold at most 31 of those
    over = {"scope": "user", "id": "eng-user001", "period": "monthly", "limit": "9301", "mode": "soft"}
    refused = manager.post("/api/v1/budgets", json=over)
    assert refused.status_code == 403 and "x 31 daily periods" in refused.json()["error"]["reason"], refused.text
    assert admin.delete("/api/v1/channels/mgr-sms").status_code == 204


def test_every_alert_kind_links_to_the_console_page_that_shows_it(console: Console) -> None:
    """Alert emails and cards linked to a Grafana-style path the console does not serve (404)."""
    from datetime import UTC, datetime

    from alerting.render import view_of
    from schemas.alerts import (
        BudgetStage,
        CapDenied,
        ProjectedExceed,
        Resolved,
        Spike,
        UnconfiguredOrg,
        Unpriced,
    )

    now = datetime.now(UTC)
    at, month, day, week = now.isoformat(), f"{now:%Y-%m}", f"{now:%Y-%m-%d}", "{}-W{:02d}".format(*now.isocalendar())
    common = {"org_id": "acme", "detected_at": at}
    alerts = [
        BudgetStage(**common, scope="department/eng", period="monthly", period_key=month, stage=80),
        CapDenied(**common, scope="user/eng-user001", period="daily", period_key=day),
        ProjectedExceed(
            **common,
            scope="org/acme",
            period="weekly",
            period_key=week,
            projected_p10_nanos=1,
            projected_p50_nanos=2,
            projected_p90_nanos=3,
            probability=0.9,
        ),
        Spike(**common, scope="user/eng-user002", period="60s", period_key=at, observed_nanos=9, expected_nanos=1),
        Unpriced(**common, scope="model/gpt-4o", period="monthly", period_key=month, provider="openai", model="gpt-4o"),
        UnconfiguredOrg(**common, scope="org/acme", period="daily", period_key=day),
        Resolved(**common, scope="department/eng", resolves="acme|department/eng|monthly|x|budget_stage|100"),
        BudgetStage(**common, scope="apikey/k1", period="monthly", period_key=month, stage=50),
    ]
    client = console.signed_in("olivia")
    for alert in alerts:
        link = view_of(alert, console.url).link
        assert link.startswith(console.url + "/billing"), link
        page = client.get(link.removeprefix(console.url))
        assert page.status_code == 200, (alert.kind, link, page.text[:300])
        kind, _, ident = alert.scope.partition("/")
        if "/billing/costs" in link and kind != "org":
            assert f'value="{ident}"' in page.text or f">{ident}<" in page.text, (alert.kind, link)
