"""A report run's files, downloaded again through the admin API, byte for byte, by its org only."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from sinks.report_runs import record_files, record_run
from sinks.tables import ReportRunRow
from sinks.usage_store import UsageStore
from tests.console.conftest import Console

pytestmark = pytest.mark.stack


def test_a_runs_files_download_again_for_its_org_only(console: Console, tokens: dict[str, str]) -> None:
    store = UsageStore.of(console.dep.settings.clickhouse)
    content = bytes(range(256)) * 40  # binary, as a PDF is
    at = datetime(2026, 11, 1, 7, tzinfo=UTC)
    record_files(store, "acme", "close@2026-11-01T07:00Z", [("close.pdf", content)])
    record_run(
        store,
        ReportRunRow("close@2026-11-01T07:00Z", "acme", "close", at, "2026-10", 1, "sent", "", ["close.pdf"],
                     ["cfo@acme.example"], "w", at, at),
    )  # fmt: skip
    finance = httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {tokens['finance']}"}, timeout=30)
    items = finance.get("/api/v1/reports/runs").json()["items"]
    run = next(item for item in items if item["run_id"] == "close@2026-11-01T07:00Z")
    assert (run["outcome"], run["period"], run["recipients"]) == ("sent", "2026-10", ["cfo@acme.example"])
    answer = finance.get(run["files"][0])
    assert answer.status_code == 200 and answer.content == content
    assert answer.headers["content-type"] == "application/pdf"
    globex = httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {tokens['globex']}"}, timeout=30)
    assert globex.get(run["files"][0]).status_code == 404
    assert all(item["run_id"] != run["run_id"] for item in globex.get("/api/v1/reports/runs").json()["items"])
    page = console.signed_in("fiona").get("/billing/reports")
    assert page.status_code == 200
    assert "close@2026-11-01T07:00Z" in page.text and f'href="{run["files"][0]}"' in page.text
