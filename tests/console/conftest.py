"""The real console on the local stack: one deployment per module (its own topics, Redis prefix and
ClickHouse database), seeded with a day of usage and the example budgets, a worker consuming, users
of every role, and ``spendstream console serve`` as a process."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from schemas.settings import Settings
from tests.deployment import Deployment, deployed, free_port, make_events
from tests.oidc_provider import CLIENT_SECRET

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's: Playwright's own download is not used
PASSWORD = "correct horse battery staple"
USERS = {  # username -> (org, role, departments)
    "olivia": ("acme", "owner", ()),
    "adam": ("acme", "admin", ()),
    "fiona": ("acme", "finance", ()),
    "mona": ("acme", "manager", ("eng",)),
    "victor": ("acme", "viewer", ()),
    "gary": ("globex", "owner", ()),
    "tess": ("acme", "viewer", ()),  # the sign-in throttling test locks her out; nobody else signs in as her
    "rita": ("acme", "viewer", ()),  # locked out by the concurrent burst (test_security)
    "xavier": ("acme", "viewer", ()),  # locked out despite forged X-Forwarded-For (test_security)
    "petra": ("acme", "viewer", ()),  # locked out from many addresses (test_security)
    "felix": ("fuzz", "owner", ()),  # the API fuzz's org, whatever it changes stays there (test_api_fuzz)
    "hank": ("hooli", "owner", ()),  # hooli signs in through an OpenID provider; hank is its break-glass owner
    "holly": ("hooli", "viewer", ()),  # a local user of hooli, refused a password once SSO is required (test_sso)
}


@dataclass
class Console:
    dep: Deployment
    url: str
    proc: subprocess.Popen[bytes]
    database: Path

    def signed_in(self, username: str) -> httpx.Client:
        """A client with a session: the sign-in form posted as a browser does (its CSRF cookie and field)."""
        client = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        page = client.get("/login")
        token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        answer = client.post("/login", data={"username": username, "password": PASSWORD, "csrf": token})
        assert answer.status_code == 303, answer.text
        return client

    def csrf(self, client: httpx.Client) -> str:
        page = client.get("/billing/budgets")
        return page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]

    def month_to_date_sum(self, org: str, expression: str) -> int:
        """``sum(expression)`` over the org's events of its current month."""
        return self.month_to_date(org, expression=expression)

    def month_to_date(self, org: str, department: str = "", where: str = "", expression: str = "cost_nanos") -> int:
        """What ClickHouse holds for the org's current month (in its time zone, Europe/Berlin for acme),
        optionally of one department and of the events matching ``where`` (SQL)."""
        from schemas.budgets import Period, period_bounds

        start, end = period_bounds(datetime.now(UTC), Period.MONTHLY, "Europe/Berlin" if org == "acme" else "UTC")
        where = (f" AND department_id = '{department}'" if department else "") + (f" AND {where}" if where else "")
        return int(
            self.dep.ch().command(
                f"SELECT sum({expression}) FROM {self.dep.settings.clickhouse.database}.usage_events "
                f"WHERE org_id = '{org}' AND occurred_at >= '{start:%Y-%m-%d %H:%M:%S}' "
                f"AND occurred_at < '{end:%Y-%m-%d %H:%M:%S}'{where}"
            )
        )


@pytest.fixture(scope="package")  # one console for the API and browser tests: its set-up takes 20 s
def console(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with deployed(stack) as dep:
        database = tmp_path_factory.mktemp("console") / "console.db"
        port = free_port()
        env = {
            **dep.env,
            "SPENDSTREAM_CONSOLE__DATABASE": str(database),
            "SPENDSTREAM_CONSOLE__PORT": str(port),
            "SPENDSTREAM_CONSOLE__CONFIG_MAX_AGE_S": "0.5",
            "SPENDSTREAM_CONSOLE__EXPORT_SETTLE_S": "1",
            "SPENDSTREAM_CONSOLE__METRICS_PORT": str(free_port()),
            "SPENDSTREAM_ALERTS__WEBHOOK_ALLOW_HOSTS": "",  # as deployed: no org's webhook may name loopback
            # the single sign-on tests' provider runs on loopback (tests/oidc_provider.py); a key it has just
            # rotated in is fetched at once rather than after the default 30 s
            "SPENDSTREAM_CONSOLE__OIDC_ALLOW_HOSTS": "127.0.0.1",
            "SPENDSTREAM_CONSOLE__OIDC_JWKS_REFRESH_S": "0",
            "SPENDSTREAM_SECRET_HOOLI_OIDC": CLIENT_SECRET,
        }
        dep.env = env
        applied = dep.cli("budgets", "apply", str(EXAMPLES / "budgets.yaml"))
        assert applied.returncode == 0, applied.stderr
        for username, (org, role, departments) in USERS.items():
            made = subprocess.run(
                [sys.executable, "-m", "admin.cli", "console", "create-user", "--org", org, "--username", username,
                 "--role", role, *(arg for d in departments for arg in ("--department", d))],
                env={**env, "SPENDSTREAM_CONSOLE_PASSWORD": PASSWORD},
                capture_output=True, text=True, check=False, timeout=60,
            )  # fmt: skip
            assert made.returncode == 0, made.stderr
        events = make_events(3_000, datetime.now(UTC), "console")
        dep.start_worker()
        dep.send(events)
        dep.wait_for(lambda: dep.ch_rows() == len(events), 120, "the events in ClickHouse")
        log = open(database.with_suffix(".log"), "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "admin.cli", "console", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, database.with_suffix(".log").read_text()
            time.sleep(0.2)
        try:
            yield Console(dep, url, proc, database)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture(scope="package")
def tokens(console: Console) -> dict[str, str]:
    """An API token per role of acme, and globex's owner's: made by each org's owner on the Access page."""
    out = {}
    for owner, org_roles in (("olivia", ["owner", "admin", "finance", "manager", "viewer"]), ("gary", ["owner"])):
        client = console.signed_in(owner)
        csrf = console.csrf(client)
        for role in org_roles:
            data = {
                "csrf": csrf,
                "name": f"{owner}-{role}",
                "role": role,
                "departments": "eng" if role == "manager" else "",
            }
            page = client.post("/billing/access", data=data)
            assert page.status_code == 200, page.text
            token = page.text.split('data-testid="new-token">', 1)[1].split("<", 1)[0]
            out[role if owner == "olivia" else "globex"] = token
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, driven by Playwright."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()
