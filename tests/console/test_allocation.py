"""Spend by declared tag and API key through the console: events carry metadata through the real stream, the
worker stores acme's declared tags (project, customer from examples/budgets.yaml), and the costs API, the CSV
and the page group and narrow by them, each figure equal to a sum over ClickHouse's raw events."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from tests.console.conftest import Console


def api(console: Console, token: str) -> httpx.Client:
    return httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _eventually(check: Callable[[], bool], within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "the console did not read the change back in time"
        time.sleep(0.1)


def _costs(rows: list[dict[str, int | str]]) -> dict[str, int]:
    return {str(r["key"]): int(r["cost_nanos"]) for r in rows}


def test_costs_by_project_customer_and_api_key_equal_sql(console: Console, tokens: dict[str, str]) -> None:
    finance = api(console, tokens["finance"])
    total = console.month_to_date("acme")
    by_project = finance.get("/api/v1/costs", params={"group": "tag:project"}).json()
    assert by_project["total_nanos"] == total
    projects = _costs(by_project["rows"])
    assert {"apollo", "gemini", "mercury", "(untagged)"} == set(projects)  # a tenth of the events name none
    for value, cost in projects.items():
        assert cost == console.month_to_date("acme", where=f"tags['project'] = '{value}'"), value
    # the stored tag is the metadata's value, or (untagged) where the event named none
    mismatched = "tags['project'] != if(mapContains(metadata, 'project'), metadata['project'], '(untagged)')"
    assert console.month_to_date("acme", where=mismatched) == 0
    customers = _costs(finance.get("/api/v1/costs", params={"group": "tag:customer"}).json()["rows"])
    assert len(customers) > 5 and sum(customers.values()) == total
    keys = _costs(finance.get("/api/v1/costs", params={"group": "api_key"}).json()["rows"])
    assert sum(keys.values()) == total and all(key.endswith(("-key-0", "-key-1")) for key in keys)
    for key, cost in keys.items():
        assert cost == console.month_to_date("acme", where=f"api_key_id = '{key}'"), key

    apollo = finance.get("/api/v1/costs", params={"group": "department", "tag:project": "apollo"}).json()
    assert apollo["total_nanos"] == projects["apollo"]
    for row in apollo["rows"]:
        assert row["cost_nanos"] == console.month_to_date("acme", str(row["key"]), "tags['project'] = 'apollo'")
    two_labels = finance.get("/api/v1/costs", params={"group": "tag:customer", "tag:project": "apollo"}).json()
    assert sum(_costs(two_labels["rows"]).values()) == projects["apollo"]

    focus = finance.get("/api/v1/export/focus", params={"format": "jsonl", "limit": "200"}).text.split("\n")
    tags = [json.loads(line)["Tags"] for line in focus if line]
    tags = [json.loads(t) if isinstance(t, str) else t for t in tags]
    assert tags and all(t["project"] in projects and "customer" in t for t in tags)  # as stored: (untagged) too

    download = finance.get("/billing/costs.csv", params={"group": "tag:project"})
    assert download.status_code == 200 and "breakdown-tag_project" in download.headers["content-disposition"]
    lines = download.text.strip().split("\r\n")[1:]
    assert {line.split(",")[0]: int(line.split(",")[6]) for line in lines} == projects
    page = console.signed_in("fiona").get("/billing/costs", params={"group": "tag:project"})
    assert page.status_code == 200
    assert 'name="tag:project"' in page.text and "<option selected>tag:project</option>" in page.text
    assert "/billing/costs?" in page.text and "tag%3Aproject=apollo" in page.text  # a project drills to its models


def test_every_row_splits_its_cost_by_token_type_exactly(console: Console, tokens: dict[str, str]) -> None:
    view = api(console, tokens["finance"]).get("/api/v1/costs", params={"group": "tag:project"}).json()
    types = ("input", "output", "cache_read", "cache_write", "reasoning")
    for row in view["rows"] + view["series"]:
        parts = [row[f"{kind}_cost_nanos"] for kind in types]
        assert sum(parts) + row["unsplit_cost_nanos"] == row["cost_nanos"], row
        assert row["unsplit_cost_nanos"] == 0  # the catalogue priced every event of the workload
    for i, kind in enumerate(types, 1):
        in_sql = console.month_to_date_sum("acme", f"cost_by_type_nanos[{i}]")
        assert sum(row[f"{kind}_cost_nanos"] for row in view["rows"]) == in_sql, kind
    assert sum(row["input_cost_nanos"] for row in view["rows"]) > 0 and view["rows"][0]["output_cost_nanos"] > 0
    page = console.signed_in("fiona").get("/billing/costs", params={"group": "tag:project"})
    table = page.text.split('data-testid="token-types"', 1)[1].split("</table>", 1)[0]
    assert "Cache read" in table and "Not split" in table and "apollo" in table
    lines = api(console, tokens["finance"]).get("/billing/costs.csv", params={"group": "model"}).text.split("\r\n")
    header = lines[0].split(",")
    assert header[7:] == [
        f"{name}_{unit}"
        for name in (
            "input_cost",
            "output_cost",
            "cache_read_cost",
            "cache_write_cost",
            "reasoning_cost",
            "unsplit_cost",
        )
        for unit in ("usd", "nanos")
    ]


def test_a_manager_sees_their_departments_projects_and_undeclared_tags_are_refused(
    console: Console, tokens: dict[str, str]
) -> None:
    manager = api(console, tokens["manager"])
    eng = _costs(manager.get("/api/v1/costs", params={"group": "tag:project"}).json()["rows"])
    assert sum(eng.values()) == console.month_to_date("acme", "eng")
    assert eng["apollo"] == console.month_to_date("acme", "eng", "tags['project'] = 'apollo'")
    finance = api(console, tokens["finance"])
    for params, field in (
        ({"group": "tag:region"}, "group"),
        ({"tag:region": "eu"}, "tag:region"),
        ({"tag:project": "apollo", "api_key": "eng-key-0"}, "api_key"),
    ):
        answer = finance.get("/api/v1/costs", params=params)
        assert answer.status_code == 400 and answer.json()["error"]["field"] == field, answer.text
    globex = api(console, tokens["globex"]).get("/api/v1/costs", params={"group": "tag:project"})
    assert globex.status_code == 400 and "declared: none" in globex.json()["error"]["reason"]


def test_owners_and_admins_edit_the_tags_with_versions_and_audit(console: Console, tokens: dict[str, str]) -> None:
    viewer, finance, admin = (api(console, tokens[role]) for role in ("viewer", "finance", "admin"))
    read = viewer.get("/api/v1/tags")
    assert read.status_code == 200 and read.json()["tags"] == ["project", "customer"]
    version = read.headers["ETag"]
    wanted = {"tags": ["project", "customer", {"env": {"values": ["prod", "staging"], "missing": "prod"}}]}
    assert finance.put("/api/v1/tags", json=wanted, headers={"If-Match": version}).status_code == 403
    assert admin.put("/api/v1/tags", json=wanted).status_code == 428
    for body, field in (
        ({"tags": ["Project"]}, "tags"),
        ({"tags": [{"env": {"values": ["a b"]}}]}, "tags.env.values"),
        ({"tags": [], "colour": "red"}, "colour"),
        ({"tags": [], "trust_request_tags": "yes"}, "trust_request_tags"),
        ({"tags": ["customer"]}, "tags"),  # project apollo has a budget (examples/budgets.yaml)
        ({"tags": [{"project": {"values": ["gemini"]}}]}, "tags.project.values"),
    ):
        refused = admin.put("/api/v1/tags", json=body, headers={"If-Match": version})
        assert refused.status_code == 400 and refused.json()["error"]["field"] == field, refused.text
    saved = admin.put("/api/v1/tags", json=wanted, headers={"If-Match": version})
    assert saved.status_code == 200 and saved.json()["tags"] == wanted["tags"]
    assert admin.put("/api/v1/tags", json=wanted, headers={"If-Match": version}).status_code == 412  # stale
    entry = next(
        e for e in api(console, tokens["owner"]).get("/api/v1/audit").json()["items"] if e["action"] == "tags.save"
    )
    assert entry["actor"] == "token:olivia-admin"
    assert entry["before"]["tags"] == ["project", "customer"] and entry["after"]["tags"] == wanted["tags"]
    # the filters offer the new tag (once the console has read the config back), and the form round-trips it
    _eventually(lambda: finance.get("/api/v1/costs", params={"group": "tag:env"}).status_code == 200)
    client = console.signed_in("adam")
    page = client.get("/billing/budgets")
    assert "env: prod, staging; missing prod" in page.text
    form = {"csrf": console.csrf(client), "version": saved.headers["ETag"], "tags": "project\nenv: prod; maybe prod"}
    refused_page = client.post("/billing/budgets/tags", data=form)
    assert (
        refused_page.status_code == 400
        and "after &#39;;&#39; write &#39;missing &lt;value&gt;&#39;" in refused_page.text
    )
    form["tags"] = "project\ncustomer"
    assert client.post("/billing/budgets/tags", data=form).status_code == 303
    _eventually(lambda: viewer.get("/api/v1/tags").json()["tags"] == ["project", "customer"])  # as other tests expect
    assert "project, customer" in console.signed_in("victor").get("/billing/budgets").text


def test_a_project_budget_shows_its_spend_and_previews_its_cap(console: Console, tokens: dict[str, str]) -> None:
    """examples/budgets.yaml budgets project apollo; its spend is the month's events stored with apollo."""
    admin = api(console, tokens["admin"])
    apollo = console.month_to_date("acme", where="tags['project'] = 'apollo'")
    assert apollo > 0
    progress = admin.get("/api/v1/overview").json()["budgets"]
    (found,) = [p for p in progress if p["budget"]["key"] == "tag/project=apollo/monthly"]
    assert found["spent_nanos"] == apollo
    body = {"scope": "tag", "id": "project=apollo", "period": "monthly", "limit": f"{apollo / 2e9:.9f}", "mode": "hard"}
    preview = admin.post("/api/v1/budgets/preview", json=body)
    assert preview.status_code == 200, preview.text
    (month,) = [p for p in preview.json()["periods"] if p["spent_nanos"]]
    assert month["spent_nanos"] == apollo and 0 < month["denied"] < month["requests"]
    undeclared = admin.post("/api/v1/budgets", json={**body, "id": "team=red"})
    assert undeclared.status_code == 400 and "allocation tags" in undeclared.json()["error"]["reason"]
    assert undeclared.json()["error"]["field"] == "id"


def test_a_custom_report_from_the_page_narrows_to_a_project(console: Console) -> None:
    """The Generate Report form offers each declared tag; the file's figures are the project's own."""
    client = console.signed_in("fiona")
    page = client.get("/billing/reports")
    assert 'name="tag:project"' in page.text and ">tag:customer</option>" in page.text
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    form = {
        "csrf": page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0],
        "kind": "custom",
        "from": today.replace(day=1).isoformat(),
        "to": today.isoformat(),
        "group": "department",
        "tag:project": "apollo",
        "format": "csv",
    }
    answer = client.post("/billing/reports", data=form)
    assert answer.status_code == 200, answer.text[:500]
    with zipfile.ZipFile(io.BytesIO(answer.content)) as files:
        name = next(n for n in files.namelist() if "by_department" in n)
        text = files.read(name).decode("utf-8-sig")
        about = files.read(next(n for n in files.namelist() if n.endswith("about.txt"))).decode()
    assert "Filtered to project apollo" in about  # the files state their filter, as a reader says it
    rows = list(csv.DictReader(text.splitlines()))
    by_department = {r["department"]: int(r["cost_nanos"]) for r in rows if r["department"] != "Total"}
    for department, cost in by_department.items():
        assert cost == console.month_to_date("acme", department, "tags['project'] = 'apollo'"), department
    assert sum(by_department.values()) == console.month_to_date("acme", where="tags['project'] = 'apollo'")
