"""Saved report templates and the chargeback rule through ``/api/v1``: finance saves, edits (with the
version it read), pauses, runs now and deletes a template, and edits the org's cost centres and
unallocated rule; every change is audited with before and after; bad input names its field; viewers and
managers may not; another org sees none of it; and the chargeback journal uses the rule saved."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.console.conftest import Console

pytestmark = pytest.mark.stack


def api(console: Console, token: str) -> httpx.Client:
    return httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def audit(console: Console, tokens: dict[str, str], target: str) -> list[dict[str, Any]]:
    items = api(console, tokens["owner"]).get("/api/v1/audit").json()["items"]
    return [e for e in items if e["target"] == target]


def test_finance_saves_edits_pauses_runs_and_deletes_a_template(console: Console, tokens: dict[str, str]) -> None:
    finance = api(console, tokens["finance"])
    body = {
        "name": "api-close",
        "kind": "custom",
        "formats": ["csv", "xlsx"],
        "recipients": ["cfo@acme.example"],
        "schedule": "0 7 * * 1",
        "timezone": "America/New_York",
        "days": 7,
        "filters": {"group": "feature", "model": "gpt-4o"},
    }
    made = finance.post("/api/v1/reports/templates", json=body)
    assert made.status_code == 201, made.text
    view = made.json()
    assert made.headers["ETag"] == view["version"] and made.headers["Location"].endswith("/api-close")
    assert (view["timezone"], view["paused"], view["filters"]) == ("America/New_York", False, body["filters"])
    assert view["next_run"].endswith("-05:00") or view["next_run"].endswith("-04:00")  # 07:00 in New York
    assert finance.post("/api/v1/reports/templates", json=body).status_code == 409

    listed = finance.get("/api/v1/reports/templates").json()["items"]
    assert [t["name"] for t in listed if t["name"] == "api-close"] == ["api-close"]
    globex = api(console, tokens["globex"])
    assert all(t["name"] != "api-close" for t in globex.get("/api/v1/reports/templates").json()["items"])
    assert globex.get("/api/v1/reports/templates/api-close").status_code == 404
    for role in ("viewer", "manager"):
        other = api(console, tokens[role])
        assert other.get("/api/v1/reports/templates").status_code == 403
        assert other.post("/api/v1/reports/templates/api-close/run").status_code == 403
        assert other.put("/api/v1/chargeback", json={}, headers={"If-Match": "x"}).status_code == 403

    changed = {**body, "recipients": ["cfo@acme.example", "ap@acme.example"]}
    assert finance.put("/api/v1/reports/templates/api-close", json=changed).status_code == 428
    stale = finance.put("/api/v1/reports/templates/api-close", json=changed, headers={"If-Match": '"old"'})
    assert stale.status_code == 412 and stale.json()["error"]["field"] == "version"
    put = finance.put("/api/v1/reports/templates/api-close", json=changed, headers={"If-Match": view["version"]})
    assert put.status_code == 200 and put.json()["recipients"] == changed["recipients"], put.text
    paused = finance.put(
        "/api/v1/reports/templates/api-close",
        json={**changed, "paused": True},
        headers={"If-Match": put.json()["version"]},
    )
    assert paused.status_code == 200 and paused.json()["paused"] and paused.json()["next_run"] is None
    ran = finance.post("/api/v1/reports/templates/api-close/run")
    assert ran.status_code == 202 and ran.json()["run_requested_at"] and ran.json()["paused"]

    for bad, field in (
        ({"kind": "nope"}, "kind"),
        ({"kind": "monthly", "schedule": "every day"}, "schedule"),
        ({"kind": "monthly", "timezone": "../../etc/passwd"}, "timezone"),
        ({"kind": "monthly", "recipients": ["cfo@acme.example\nBcc: x@evil.example"]}, "recipients[0]"),
        ({"kind": "monthly", "recipients": [f"r{i}@acme.example" for i in range(21)]}, "recipients"),
        ({"kind": "monthly", "formats": ["docx"]}, "formats"),
        ({"kind": "monthly", "filters": {"model": "gpt-4o"}}, "filters"),
        ({"kind": "custom", "filters": {"tag:team": "red"}}, "filters.tag:team"),  # acme declares no tag team
        ({"kind": "custom", "filters": {"group": "tag:team"}}, "filters.group"),
        ({"kind": "custom", "filters": {"Tag:Project": "x"}}, "filters"),
        ({"kind": "monthly", "owner": "olivia"}, "owner"),
        ({"name": "Bad Name!", "kind": "monthly"}, "name"),
    ):
        answer = finance.post("/api/v1/reports/templates", json={"name": "bad-one", **bad})
        assert answer.status_code == 400 and answer.json()["error"]["field"] == field, (bad, answer.text)

    current = finance.get("/api/v1/reports/templates/api-close")
    assert finance.delete("/api/v1/reports/templates/api-close").status_code == 428
    gone = finance.delete("/api/v1/reports/templates/api-close", headers={"If-Match": current.headers["ETag"]})
    assert gone.status_code == 204
    assert finance.get("/api/v1/reports/templates/api-close").status_code == 404

    trail = audit(console, tokens, "api-close")
    actions = [e["action"] for e in reversed(trail)]
    assert actions == [
        "report.template.create",
        "report.template.update",
        "report.template.pause",
        "report.template.run",
        "report.template.delete",
    ]
    assert {e["actor"] for e in trail} == {"token:olivia-finance"}
    update = next(e for e in trail if e["action"] == "report.template.update")
    assert (
        update["before"]["recipients"] == ["cfo@acme.example"]
        and update["after"]["recipients"] == changed["recipients"]
    )


def _journal(client: httpx.Client) -> list[dict[str, str]]:
    month = datetime.now(ZoneInfo("Europe/Berlin")).strftime("%Y-%m")  # the console's usage is of the last day
    answer = client.post("/api/v1/reports", json={"kind": "ledger", "format": "csv", "month": month})
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        name = next(n for n in archive.namelist() if "journal" in n or "ledger" in n)
        text = archive.read(name).decode("utf-8-sig")
    return list(csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#")))


def test_finance_edits_the_chargeback_rule_and_the_journal_uses_it(console: Console, tokens: dict[str, str]) -> None:
    finance = api(console, tokens["finance"])
    before = finance.get("/api/v1/chargeback")
    assert before.status_code == 200
    original = before.json()
    assert original["cost_centres"]["eng"] == "CC-1010" and original["unallocated_cost_centre"] == "CC-9000"

    rule = {
        **original,
        "cost_centres": {**original["cost_centres"], "eng": "CC-7777"},
        "unallocated": {"eng": 60, "sales": 40},
    }
    assert finance.put("/api/v1/chargeback", json=rule).status_code == 428
    for bad, field in (
        ({"unallocated": {"eng": 60, "sales": 30}}, "chargeback.unallocated"),
        ({"cost_centres": {"eng": "CC-1\nDR 9999"}}, "chargeback.cost_centres.eng"),
        ({"cost_centres": {"not a dept!": "CC-1"}}, "chargeback.cost_centres"),
        ({"accounts": {"expense": ""}}, "chargeback.accounts"),
        ({"colour": "red"}, "chargeback.colour"),
    ):
        answer = finance.put("/api/v1/chargeback", json={**rule, **bad}, headers={"If-Match": original["version"]})
        assert answer.status_code == 400 and answer.json()["error"]["field"] == field, (bad, answer.text)
    saved = finance.put("/api/v1/chargeback", json=rule, headers={"If-Match": original["version"]})
    assert saved.status_code == 200, saved.text
    assert saved.json()["unallocated"] == {"eng": 60, "sales": 40} and saved.headers["ETag"] != original["version"]
    stale = finance.put("/api/v1/chargeback", json=rule, headers={"If-Match": original["version"]})
    assert stale.status_code == 412
    try:
        console.dep.wait_for(
            lambda: finance.get("/api/v1/chargeback").json()["cost_centres"]["eng"] == "CC-7777", 10, "the rule read"
        )
        journal = _journal(finance)
        assert any("CC-7777" in row.values() for row in journal), journal[:3]
        (entry,) = [e for e in audit(console, tokens, "chargeback") if e["after"]["cost_centres"]["eng"] == "CC-7777"]
        assert entry["action"] == "chargeback.save" and entry["before"]["cost_centres"]["eng"] == "CC-1010"
        assert entry["actor"] == "token:olivia-finance"
    finally:  # the other tests read the example's rule
        current = finance.get("/api/v1/chargeback").headers["ETag"]
        restored = {k: v for k, v in original.items() if k != "version"}
        assert finance.put("/api/v1/chargeback", json=restored, headers={"If-Match": current}).status_code == 200
