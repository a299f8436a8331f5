"""The admin API on the real console: every role against every endpoint, org isolation, versions
(If-Match), field errors, CSRF, sign-in throttling, and a budget enforced by the caps within 2 s."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
import zipfile

import httpx
import pytest

from enforcement.client import CapClient
from enforcement.decision import Outcome
from enforcement.subject import Subject
from tests.console.conftest import Console

pytestmark = pytest.mark.stack

USER_BUDGET = {"scope": "user", "id": "eng-user001", "period": "monthly", "limit": "20", "mode": "soft"}

# endpoint -> the roles it admits (the rest are refused with 403)
MATRIX = {
    ("GET", "/api/v1/me"): {"owner", "admin", "finance", "manager", "viewer"},
    ("GET", "/api/v1/overview"): {"owner", "admin", "finance", "manager", "viewer"},
    ("GET", "/api/v1/budgets"): {"owner", "admin", "finance", "manager", "viewer"},
    ("POST", "/api/v1/budgets"): {"owner", "admin", "manager"},  # a manager: a user of their department
    ("PUT", "/api/v1/budgets/department/research/monthly"): {"owner", "admin"},
    ("PATCH", "/api/v1/budgets/department/research/monthly"): {"owner", "admin"},
    ("DELETE", "/api/v1/budgets/user/eng-user001/monthly"): {"owner", "admin", "manager"},
    ("GET", "/api/v1/alerts"): {"owner", "admin", "finance", "viewer"},
    ("GET", "/api/v1/costs"): {"owner", "admin", "finance", "manager", "viewer"},
    ("GET", "/api/v1/patterns"): {"owner", "admin", "finance", "manager", "viewer"},
    ("GET", "/api/v1/forecasts"): {"owner", "admin", "finance", "manager", "viewer"},
    ("GET", "/api/v1/channels"): {"owner", "admin", "finance", "manager", "viewer"},
    ("PUT", "/api/v1/channels/matrix"): {"owner", "admin"},
    ("PUT", "/api/v1/routing"): {"owner", "admin"},
    ("GET", "/api/v1/audit"): {"owner"},
    ("GET", "/api/v1/reports/runs"): {"owner", "admin", "finance"},
}


def api(console: Console, token: str) -> httpx.Client:
    return httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def version(client: httpx.Client, key: str) -> str:
    answer = client.get(f"/api/v1/budgets/{key}")
    return answer.headers["ETag"] if answer.status_code == 200 else '"absent"'


@pytest.mark.parametrize("role", ["owner", "admin", "finance", "manager", "viewer"])
def test_every_role_against_every_endpoint(console: Console, tokens: dict[str, str], role: str) -> None:
    owner = api(console, tokens["owner"])
    for (method, path), allowed in MATRIX.items():
        owner.delete(
            "/api/v1/budgets/user/eng-user001/monthly", headers={"If-Match": version(owner, "user/eng-user001/monthly")}
        )
        if method == "DELETE":
            assert owner.post("/api/v1/budgets", json=USER_BUDGET).status_code == 201
        client = api(console, tokens[role])
        key = path.removeprefix("/api/v1/budgets/")
        headers = {"If-Match": version(owner, key)} if path.startswith("/api/v1/budgets/") else {}
        body: dict | None = None
        if method == "POST":
            body = USER_BUDGET
        elif path.startswith("/api/v1/budgets/"):
            body = {"limit": "41", "mode": "soft", "stages": [25, 50, 100], "alerts": {}}
        elif path.startswith("/api/v1/channels/"):
            body = {"type": "email", "recipients": ["matrix@acme.example"]}
        elif path == "/api/v1/routing":
            body = {"default": ["matrix"]}
        answer = client.request(method, path, json=body, headers=headers)
        if role in allowed:
            assert answer.status_code < 300, (role, method, path, answer.text)
        else:
            assert answer.status_code == 403, (role, method, path, answer.status_code, answer.text)
            assert json.loads(answer.text)["error"]["reason"]
    owner.patch(
        "/api/v1/budgets/department/research/monthly",
        json={"limit": "40", "stages": [25, 50, 100]},
        headers={"If-Match": version(owner, "department/research/monthly")},
    )


def test_no_request_reaches_another_org(console: Console, tokens: dict[str, str]) -> None:
    acme, globex = api(console, tokens["owner"]), api(console, tokens["globex"])
    before = globex.get("/api/v1/budgets").json()
    # ids of the other org in the body, the query and the path: refused or answered for one's own org only
    assert acme.post("/api/v1/budgets", json={**USER_BUDGET, "org": "globex"}).status_code == 403
    overview = acme.get("/api/v1/overview", params={"org": "globex"}).json()
    assert overview["org_id"] == "acme"
    assert acme.get("/api/v1/budgets/org/globex/monthly").status_code == 404
    globex_budget = "org/globex/monthly"
    assert globex.get(f"/api/v1/budgets/{globex_budget}").status_code == 200
    whole = {"limit": "1", "mode": "soft", "stages": [100], "alerts": {}}
    answer = acme.put(f"/api/v1/budgets/{globex_budget}", json=whole, headers={"If-Match": '"absent"'})
    assert answer.status_code in (400, 403), answer.text  # an org budget's id must be one's own org
    assert (
        acme.delete(
            f"/api/v1/budgets/{globex_budget}", headers={"If-Match": version(globex, globex_budget)}
        ).status_code
        == 404
    )
    assert all(item["key"] != globex_budget for item in acme.get("/api/v1/budgets").json()["items"])
    assert globex.get("/api/v1/budgets").json() == before  # nothing changed


def test_a_concurrent_edit_is_refused_never_lost(console: Console, tokens: dict[str, str]) -> None:
    admin = api(console, tokens["admin"])
    key = "department/research/monthly"
    seen = version(admin, key)
    first = admin.patch(
        f"/api/v1/budgets/{key}", json={"limit": "41", "stages": [25, 50, 100]}, headers={"If-Match": seen}
    )
    assert first.status_code == 200, first.text
    second = admin.patch(f"/api/v1/budgets/{key}", json={"limit": "42"}, headers={"If-Match": seen})
    assert second.status_code == 412 and second.json()["error"]["field"] == "version"
    assert admin.patch(f"/api/v1/budgets/{key}", json={"limit": "42"}).status_code == 428
    # one who may not change the budget is refused as such, whatever version they name
    for role in ("viewer", "finance"):
        refused = api(console, tokens[role]).patch(
            f"/api/v1/budgets/{key}", json={"limit": "42"}, headers={"If-Match": seen}
        )
        assert refused.status_code == 403, (role, refused.text)
        gone = api(console, tokens[role]).delete(f"/api/v1/budgets/{key}", headers={"If-Match": seen})
        assert gone.status_code == 403, (role, gone.text)
    assert admin.get(f"/api/v1/budgets/{key}").json()["limit"] == "41"
    admin.patch(
        f"/api/v1/budgets/{key}",
        json={"limit": "40", "stages": [25, 50, 100]},
        headers={"If-Match": first.headers["ETag"]},
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**USER_BUDGET, "limit": "ten"}, "limit"),
        ({**USER_BUDGET, "stages": [80, 50]}, "stages"),
        ({**USER_BUDGET, "scope": "team"}, "scope"),
        ({**USER_BUDGET, "alerts": {"100": ["no-such-channel"]}}, "alerts.100"),
        ({**USER_BUDGET, "colour": "red"}, "colour"),
    ],
)
def test_a_bad_budget_is_refused_naming_the_field(
    console: Console, tokens: dict[str, str], body: dict, field: str
) -> None:
    answer = api(console, tokens["admin"]).post("/api/v1/budgets", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["field"] == field, answer.text


def test_pages_need_the_csrf_token_and_sign_in_is_throttled(console: Console) -> None:
    client = console.signed_in("adam")
    form = {"scope": "user", "id": "eng-user002", "limit": "5"}
    assert client.post("/billing/budgets", data=form).status_code == 403
    assert client.post("/billing/budgets", data={**form, "csrf": "forged"}).status_code == 403
    assert client.post("/api/v1/budgets", json={**USER_BUDGET, "id": "eng-user002"}).status_code == 403  # cookie alone
    assert api(console, "ssc_not-a-token").get("/api/v1/me").status_code == 401
    browser = httpx.Client(base_url=console.url, timeout=30)
    statuses = []
    for _ in range(7):
        token = browser.get("/login").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        statuses.append(
            browser.post("/login", data={"username": "tess", "password": "wrong", "csrf": token}).status_code
        )
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]


def test_overview_total_equals_clickhouse_and_a_manager_sees_their_department(
    console: Console, tokens: dict[str, str]
) -> None:
    overview = api(console, tokens["finance"]).get("/api/v1/overview").json()
    assert overview["total_nanos"] == console.month_to_date("acme") > 0
    assert {b["budget"]["key"] for b in overview["budgets"]} >= {"org/acme/monthly", "department/eng/daily"}
    manager = api(console, tokens["manager"])
    mine = manager.get("/api/v1/overview").json()
    assert mine["department"] == "eng" and mine["total_nanos"] == console.month_to_date("acme", "eng")
    assert all(d["user"].startswith("eng-") for d in mine["drivers"])
    assert manager.get("/api/v1/overview", params={"department": "sales"}).status_code == 403
    over = manager.post("/api/v1/budgets", json={**USER_BUDGET, "id": "eng-user003", "period": "daily", "limit": "301"})
    assert over.status_code == 403 and over.json()["error"]["field"] == "limit"  # eng's daily budget is 300
    assert manager.post("/api/v1/budgets", json={**USER_BUDGET, "id": "sales-user001"}).status_code == 403


def test_a_hard_budget_made_in_the_console_is_enforced_within_2_s(console: Console, tokens: dict[str, str]) -> None:
    settings = console.dep.settings
    caps = CapClient.from_url(settings.redis.url, key_prefix=settings.redis.key_prefix, org_cache_s=0)
    user = f"eng-{uuid.uuid4().hex[:6]}"
    subject = Subject("acme", user, "eng")
    assert caps.reserve(subject, f"r-{uuid.uuid4().hex}", 1_000_000).outcome is Outcome.ALLOWED
    body = {"scope": "user", "id": user, "period": "daily", "limit": "0.0005", "mode": "hard"}
    began = time.monotonic()
    assert api(console, tokens["admin"]).post("/api/v1/budgets", json=body).status_code == 201
    while caps.reserve(subject, f"r-{uuid.uuid4().hex}", 1_000_000).outcome is not Outcome.DENIED:
        assert time.monotonic() - began < 2, "the new hard cap was not enforced within 2 s"
        time.sleep(0.05)
    audit = api(console, tokens["owner"]).get("/api/v1/audit").json()["items"]
    assert any(e["target"] == f"user/{user}/daily" and e["actor"] == "token:olivia-admin" for e in audit)


def test_cost_analysis_equals_clickhouse_drills_down_and_downloads(console: Console, tokens: dict[str, str]) -> None:
    finance = api(console, tokens["finance"])
    by_department = finance.get("/api/v1/costs", params={"group": "department"}).json()
    assert by_department["total_nanos"] == console.month_to_date("acme")
    assert {r["key"] for r in by_department["rows"]} == {"eng", "sales", "support", "research"}
    eng = next(r for r in by_department["rows"] if r["key"] == "eng")
    users = finance.get("/api/v1/costs", params={"group": "user", "department": "eng"}).json()
    assert sum(r["cost_nanos"] for r in users["rows"]) == eng["cost_nanos"] == console.month_to_date("acme", "eng")
    assert all(r["key"].startswith("eng-") for r in users["rows"])
    weekly = finance.get("/api/v1/costs", params={"granularity": "week"}).json()
    assert sum(r["cost_nanos"] for r in weekly["series"]) == by_department["total_nanos"]
    download = finance.get("/billing/costs.csv", params={"group": "department"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    lines = download.text.strip().split("\r\n")
    assert lines[0].startswith("key,requests,input_tokens,output_tokens,tokens,cost_usd,cost_nanos,input_cost_usd,")
    assert sum(int(line.split(",")[6]) for line in lines[1:]) == by_department["total_nanos"]
    assert all(line.split(",")[5] == f"{int(line.split(',')[6]) / 1e9:.9f}" for line in lines[1:])
    for params, field in (
        ({"from": "2026-13-01"}, "from"),
        ({"group": "colour"}, "group"),
        ({"granularity": "hour"}, "granularity"),
    ):
        answer = finance.get("/api/v1/costs", params=params)
        assert answer.status_code == 400 and answer.json()["error"]["field"] == field, answer.text
    manager = api(console, tokens["manager"])
    pinned = manager.get("/api/v1/costs", params={"group": "department"}).json()
    assert [r["key"] for r in pinned["rows"]] == ["eng"]
    assert manager.get("/api/v1/costs", params={"department": "sales"}).status_code == 403


def test_patterns_and_forecasts_answer_for_the_principal(console: Console, tokens: dict[str, str]) -> None:
    patterns = api(console, tokens["viewer"]).get("/api/v1/patterns").json()
    assert sum(c["requests"] for c in patterns["heatmap"]) == sum(d["requests"] for d in patterns["weekdays"]) > 0
    assert {a["feature"] for a in patterns["adoption"]}
    forecasts = api(console, tokens["viewer"]).get("/api/v1/forecasts")
    assert forecasts.status_code == 200 and isinstance(forecasts.json()["items"], list)


def test_channels_and_routing_are_validated_published_and_kept_in_use(console: Console, tokens: dict[str, str]) -> None:
    admin = api(console, tokens["admin"])
    bad = admin.put("/api/v1/channels/leads", json={"type": "email", "recipients": ["not-an-address"]})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "recipients"
    assert (
        admin.put("/api/v1/channels/Leads", json={"type": "email", "recipients": "a@b.co"}).json()["error"]["field"]
        == "name"
    )
    saved = admin.put(
        "/api/v1/channels/leads", json={"type": "email", "recipients": "lead@acme.example, cfo@acme.example"}
    )
    assert saved.status_code == 200 and saved.json()["recipients"] == ["lead@acme.example", "cfo@acme.example"]
    hook = admin.put(
        "/api/v1/channels/eng-slack", json={"type": "slack", "recipients": "env:SPENDSTREAM_SECRET_ACME_SLACK_WEBHOOK"}
    )
    assert hook.json()["recipients"] == ["(secret)"]
    assert admin.put("/api/v1/routing", json={"default": ["nope"]}).json()["error"]["field"] == "default"
    assert admin.put("/api/v1/routing", json={"default": ["leads"], "spike": ["eng-slack"]}).status_code == 200
    listed = admin.get("/api/v1/channels").json()
    assert listed["routing"] == {"default": ["leads"], "spike": ["eng-slack"]}
    assert {c["name"] for c in listed["items"]} >= {"leads", "eng-slack"}
    in_use = admin.delete("/api/v1/channels/leads")
    assert in_use.status_code == 409 and "routing" in in_use.json()["error"]["reason"]
    routed = admin.post("/api/v1/budgets", json={**USER_BUDGET, "id": "eng-user009", "alerts": {"80": ["eng-slack"]}})
    assert routed.status_code == 201, routed.text
    assert admin.get("/api/v1/budgets/user/eng-user009/monthly").json()["alerts"] == {"80": ["eng-slack"]}


def test_a_preview_replays_the_last_30_days_without_saving(console: Console, tokens: dict[str, str]) -> None:
    admin = api(console, tokens["admin"])
    spent = console.month_to_date("acme", "eng")
    limit = f"{spent / 2 / 1e9:.9f}"
    body = {
        "scope": "department",
        "id": "eng",
        "period": "monthly",
        "limit": limit,
        "mode": "hard",
        "stages": [50, 100],
    }
    answer = admin.post("/api/v1/budgets/preview", json=body)
    assert answer.status_code == 200, answer.text
    (month,) = [p for p in answer.json()["periods"] if p["spent_nanos"]]
    assert month["spent_nanos"] == spent
    assert [stage for stage, _ in month["stages"]] == [50, 100]
    assert 0 < month["denied"] < month["requests"]  # the later half of the month's requests, about
    assert admin.get("/api/v1/budgets/department/eng/monthly").status_code == 404  # nothing saved


def test_the_alerts_page_lists_open_incidents_of_ones_own_org(console: Console, tokens: dict[str, str]) -> None:
    client, layout = console.dep.redis(), console.dep.layout
    incident = {
        "channel": "oncall",
        "budget": "budget/acme/org/monthly",
        "scope": "org/acme",
        "period_key": "2026-11",
        "stage": 100,
    }
    client.hset(layout.alerts_open("acme"), "acme|org/acme|monthly|2026-11|budget_stage|100", json.dumps(incident))
    client.hset(
        layout.alerts_open("globex"), "globex|org/globex|monthly|2026-11|budget_stage|100", json.dumps(incident)
    )
    answer = api(console, tokens["finance"]).get("/api/v1/alerts").json()
    assert [i["alert"] for i in answer["open_incidents"]] == ["acme|org/acme|monthly|2026-11|budget_stage|100"]
    page = console.signed_in("fiona").get("/billing/alerts")
    assert "oncall" in page.text and "Open incidents" in page.text


def test_generate_report_answers_files_for_the_roles_that_may(console: Console, tokens: dict[str, str]) -> None:
    finance = api(console, tokens["finance"])
    pdf = finance.post("/api/v1/reports", json={"kind": "custom", "group": "department", "format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert "attachment" in pdf.headers["content-disposition"]
    zipped = finance.post("/api/v1/reports", json={"kind": "custom", "group": "department", "format": "csv"})
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        name = next(n for n in archive.namelist() if n.endswith("-by_department.csv"))
        rows = list(csv.DictReader(io.StringIO(archive.read(name).decode())))
    assert sum(int(r["cost_nanos"]) for r in rows) == console.month_to_date("acme")
    for body, field in (
        ({"kind": "custom", "format": "docx"}, "format"),
        ({"kind": "monthly", "month": "2099-01"}, "month"),
    ):
        assert finance.post("/api/v1/reports", json=body).json()["error"]["field"] == field
    for role in ("manager", "viewer"):
        assert api(console, tokens[role]).post("/api/v1/reports", json={"kind": "monthly"}).status_code == 403
    page = console.signed_in("fiona").get("/billing/reports")
    assert page.status_code == 200 and "Monthly usage summary" in page.text


def test_the_overviews_cost_drivers_show_their_share_of_the_total_the_page_shows(
    console: Console, tokens: dict[str, str]
) -> None:
    """Every share read 0.0 %: the drivers were asked for without one, and none was computed."""
    overview = api(console, tokens["owner"]).get("/api/v1/overview").json()
    total = overview["total_nanos"]
    assert total == console.month_to_date("acme") > 0  # the page's total is ClickHouse's month to date
    drivers = overview["drivers"]
    assert drivers and all(d["share"] == pytest.approx(d["cost_nanos"] / total) for d in drivers)
    assert 0 < sum(d["share"] for d in drivers) <= 1
    page = console.signed_in("olivia").get("/billing").text
    for driver in drivers[:3]:
        assert f"{driver['share'] * 100:.1f}%" in page
