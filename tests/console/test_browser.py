"""The console in a real browser (Debian's chromium, driven by Playwright): sign in, the overview's
month to date against ClickHouse to the cent, a hard budget made in Budget Settings enforced within
2 s, a manager kept to their department, a viewer who cannot save, and no serious or critical axe
violation on any page. Screenshots of every page go to tests/console/screenshots/."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from zoneinfo import ZoneInfo

import pypdf
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Locator, Page

from enforcement.client import CapClient
from enforcement.decision import Outcome
from enforcement.subject import Subject
from schemas.money import format_usd
from tests.console.conftest import PASSWORD, Console
from tests.deployment import scheduler_polls, start_report_scheduler
from tests.receivers import start_smtp

pytestmark = pytest.mark.stack

SHOTS = Path(__file__).parent / "screenshots"
PAGES = {  # path: its title
    "/billing": "Overview",
    "/billing/costs": "Cost analysis",
    "/billing/patterns": "Usage patterns",
    "/billing/forecasts": "Forecasts",
    "/billing/budgets": "Budget Settings",
    "/billing/reports": "Generate Report",
    "/billing/alerts": "Alerts",
    "/billing/access": "Access",
}


def sign_in(browser: Browser, console: Console, username: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(console.url + "/billing")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/billing")
    return page


def test_sign_in_and_the_overview_total_equals_clickhouse(browser: Browser, console: Console) -> None:
    page = browser.new_page()
    page.goto(console.url + "/billing")
    assert page.url.endswith("/login?next=/billing")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert "Wrong organisation, username or password" in page.get_by_role("alert").inner_text()
    page = sign_in(browser, console, "olivia")
    shown = page.get_by_test_id("mtd-total").inner_text()
    assert shown == format_usd(console.month_to_date("acme"))
    assert page.get_by_role("heading", name="Token consumption by model").is_visible()
    assert page.get_by_role("heading", name="Top cost drivers").is_visible()


def test_a_hard_budget_saved_in_budget_settings_denies_within_2_s(browser: Browser, console: Console) -> None:
    settings = console.dep.settings
    caps = CapClient.from_url(settings.redis.url, key_prefix=settings.redis.key_prefix, org_cache_s=0)
    user = f"eng-{uuid.uuid4().hex[:6]}"
    subject = Subject("acme", user, "eng")
    page = sign_in(browser, console, "adam")
    page.goto(console.url + "/billing/budgets")
    page.get_by_label("Applies to").select_option("user")
    page.get_by_label("Id (user").fill(user)
    page.get_by_label("Period", exact=True).select_option("daily")
    page.get_by_label("Limit (USD)").fill("ten dollars")
    page.get_by_role("button", name="Save budget").click()
    assert "not a USD amount" in page.locator("#limit-error").inner_text()  # next to the field it names
    assert page.get_by_label("Limit (USD)").get_attribute("aria-invalid") == "true"
    page.get_by_label("Limit (USD)").fill("0.0005")
    page.get_by_label("Mode", exact=True).select_option("hard")
    began = time.monotonic()
    page.get_by_role("button", name="Save budget").click()
    assert f"Saved budget user/{user}/daily" in page.get_by_role("status").inner_text()
    while caps.reserve(subject, f"r-{uuid.uuid4().hex}", 1_000_000).outcome is not Outcome.DENIED:
        assert time.monotonic() - began < 2, "the hard cap saved in the console was not enforced within 2 s"
        time.sleep(0.05)


def test_a_manager_sees_only_their_department(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, "mona")
    assert "department eng" in page.get_by_role("heading", level=1).inner_text()
    drivers = page.get_by_role("region", name="Top cost drivers").get_by_role("rowheader").all_inner_texts()
    assert drivers and all(user.startswith("eng-") for user in drivers)
    assert page.get_by_test_id("mtd-total").inner_text() == format_usd(console.month_to_date("acme", "eng"))
    page.goto(console.url + "/billing?department=sales")
    assert "cannot see department" in page.get_by_role("alert").inner_text()
    page.goto(console.url + "/billing/budgets")
    shown = page.get_by_role("region", name="Budgets").get_by_role("rowheader").all_inner_texts()
    assert "department/eng" in shown and "department/research" not in shown and "org/acme" not in shown


def test_a_viewer_cannot_save(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, "victor")
    page.goto(console.url + "/billing/budgets")
    assert page.get_by_role("button", name="Save budget").count() == 0
    assert "can read budgets but not change them" in page.inner_text("main")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        console.url + "/billing/budgets", form={"csrf": csrf or "", "scope": "user", "id": "x", "limit": "1"}
    )
    assert answer.status == 403


@pytest.mark.parametrize("path", PAGES)
def test_every_page_passes_axe_and_is_captured(browser: Browser, console: Console, path: str) -> None:
    page = sign_in(browser, console, "olivia")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(console.url + path)
    if page.locator(".chart").count():
        page.wait_for_selector("body[data-charts-drawn=true]", timeout=30_000)
        drawn = page.locator(".chart").evaluate_all("charts => charts.map(c => c.dataset.drawn)")
        assert drawn and set(drawn) == {"true"}, (drawn, errors)
    assert not errors, errors
    assert page.title() == f"{PAGES[path]} · spendstream"
    SHOTS.mkdir(exist_ok=True)
    name = path.strip("/").replace("/", "-") or "billing"
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    results = Axe().run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not serious, [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in serious]


def test_cost_analysis_drills_from_a_department_to_its_users(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, "fiona")
    page.goto(console.url + "/billing/costs?group=department")
    page.get_by_role("link", name="eng", exact=True).click()
    assert "department eng" in page.get_by_role("heading", level=1).inner_text()
    users = page.get_by_role("region", name="Cost by user").get_by_role("rowheader").all_inner_texts()
    assert users and all(user.startswith("eng-") for user in users)
    assert page.get_by_test_id("cost-total").inner_text() == format_usd(console.month_to_date("acme", "eng"))
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV of the cost by user").click()
    assert download.value.suggested_filename.endswith(".csv")


def test_the_sign_in_page_passes_axe(browser: Browser, console: Console) -> None:
    page = browser.new_page()
    page.goto(console.url + "/login")
    page.screenshot(path=str(SHOTS / "login.png"))
    results = Axe().run(page)
    assert not [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def test_generate_report_downloads_a_custom_pdf(browser: Browser, console: Console, tmp_path: Path) -> None:
    page = sign_in(browser, console, "fiona")
    page.goto(console.url + "/billing/reports")
    custom = page.get_by_role("region", name="Custom report")
    custom.get_by_label("Group by").select_option("department")
    with page.expect_download() as download:
        custom.get_by_role("button", name="Generate").click()
    target = tmp_path / download.value.suggested_filename
    download.value.save_as(target)
    assert target.suffix == ".pdf" and target.read_bytes().startswith(b"%PDF")
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(target).pages)
    assert "Usage report" in text and "By department" in text


def saved_row(page: Page) -> Locator:
    return page.get_by_role("table", name="Saved templates").get_by_role("row").filter(has_text="cfo-daily")


def test_finance_saves_schedules_runs_and_deletes_a_template_and_the_run_is_emailed_once(
    browser: Browser, console: Console
) -> None:
    controller, mailbox = start_smtp()
    scheduler, metrics = start_report_scheduler(console.dep, controller.port)
    try:
        page = sign_in(browser, console, "fiona")  # finance
        page.goto(console.url + "/billing/reports")
        # a daily schedule whose time is the next minute at least 20 s away (in the org's zone, Berlin)
        berlin = datetime.now(ZoneInfo("Europe/Berlin"))
        due = (berlin + timedelta(seconds=80)).replace(second=0, microsecond=0)
        page.get_by_label("Name", exact=True).fill("cfo-daily")
        page.get_by_label("Report", exact=True).select_option("chargeback")
        page.get_by_label("Schedule (cron").fill(f"{due.minute} {due.hour} * * *")
        page.get_by_label("Recipients").fill("cfo@acme.example")
        page.get_by_label("PDF").uncheck()
        page.get_by_label("CSV (zip)").check()
        page.get_by_role("button", name="Save template").click()
        assert page.get_by_role("status").inner_text() == "Saved template cfo-daily."
        row = saved_row(page)
        assert "chargeback" in row.inner_text() and f"{due:%Y-%m-%d %H:%M}" in row.inner_text()

        def sent(kind: str) -> list[Message]:
            return [m for _, _, m in mailbox.messages if kind in str(m.get_payload(0).get_payload(decode=True))]

        console.dep.wait_for(lambda: len(sent("scheduled report")) == 1, 150, "the scheduled run's email")
        polled = time.time()
        console.dep.wait_for(lambda: scheduler_polls(metrics) > polled + 2, 30, "the scheduler to poll again")
        (scheduled,) = sent("scheduled report")  # once
        assert scheduled["To"] == "cfo@acme.example" and f"cfo-daily@{due.astimezone(UTC):%Y-%m-%dT%H:%MZ}" in str(
            scheduled.get_payload(0).get_payload(decode=True)
        )
        assert [p.get_filename() for p in scheduled.walk() if p.get_filename()]  # the CSV files, attached

        page.goto(console.url + "/billing/reports")
        page.get_by_role("button", name="Pause cfo-daily").click()
        assert "Paused template cfo-daily" in page.get_by_role("status").inner_text()
        assert "paused" in saved_row(page).inner_text()
        page.get_by_role("button", name="Run now cfo-daily").click()
        assert "Asked for a run of cfo-daily" in page.get_by_role("status").inner_text()
        console.dep.wait_for(lambda: len(sent("report asked for")) == 1, 60, "the run asked for, paused or not")

        page.get_by_role("link", name="Edit cfo-daily").click()
        page.get_by_label("Recipients").fill("cfo@acme.example, ap@acme.example")
        page.get_by_role("button", name="Save template").click()
        assert "ap@acme.example" in saved_row(page).inner_text()
        page.get_by_role("button", name="Delete cfo-daily").click()
        assert page.get_by_role("status").inner_text() == "Deleted template cfo-daily."
        assert saved_row(page).count() == 0
        runs = page.get_by_role("table", name="Recent scheduled runs").get_by_role("row").filter(has_text="cfo-daily@")
        assert runs.count() == 2  # the scheduled run and the one asked for, each sent
        page.screenshot(path=str(SHOTS / "reports-templates.png"), full_page=True)
    finally:
        scheduler.terminate()
        scheduler.wait(30)
        controller.stop()
    assert len(sent("scheduled report")) == 1 and len(sent("report asked for")) == 1
