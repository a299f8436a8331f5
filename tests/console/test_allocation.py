"""Spend by declared tag and API key through the console: events carry metadata through the real stream, the
worker stores acme's declared tags (project, customer from examples/budgets.yaml), and the costs API, the CSV
and the page group and narrow by them, each figure equal to a sum over ClickHouse's raw events."""

from __future__ import annotations

import httpx

from tests.console.conftest import Console


def api(console: Console, token: str) -> httpx.Client:
    return httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


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

    download = finance.get("/billing/costs.csv", params={"group": "tag:project"})
    assert download.status_code == 200 and "breakdown-tag_project" in download.headers["content-disposition"]
    lines = download.text.strip().split("\r\n")[1:]
    assert {line.split(",")[0]: int(line.split(",")[6]) for line in lines} == projects
    page = console.signed_in("fiona").get("/billing/costs", params={"group": "tag:project"})
    assert page.status_code == 200
    assert 'name="tag:project"' in page.text and "<option selected>tag:project</option>" in page.text
    assert "/billing/costs?" in page.text and "tag%3Aproject=apollo" in page.text  # a project drills to its models


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
