"""Screenshots of the console that `make run` left running, for the README (docs/console-*.png).

    .venv/bin/python scripts/console_screenshots.py [URL]

Signs in with the demo's sign-in and saves the overview and Budget Settings as docs/console-overview.png
and docs/console-budgets.png, with Debian's chromium (as the browser tests do)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright

from admin.demo import DEMO_PASSWORD, DEMO_USER

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = {"overview": "/billing", "budgets": "/billing/budgets", "costs": "/billing/costs?group=department",
         "patterns": "/billing/patterns", "forecasts": "/billing/forecasts", "alerts": "/billing/alerts"}  # fmt: skip


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8700"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url + "/login")
        page.get_by_label("Username").fill(DEMO_USER)
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/billing")
        for name, path in PAGES.items():
            page.goto(url + path)
            if page.locator(".chart").count():
                page.wait_for_selector("body[data-charts-drawn=true]", timeout=30_000)
            target = DOCS / f"console-{name}.png"
            page.screenshot(path=str(target), full_page=True)
            print(f"wrote {target}")  # noqa: T201 - a command-line tool
        browser.close()


if __name__ == "__main__":
    main()
