"""The monthly summary end to end: usage through the worker into ClickHouse, `spendstream reports
generate` to PDF, XLSX and CSV, and every total read back from every file equal to ClickHouse's raw
events to the nano-USD."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import openpyxl
import pypdf
import pytest

from reports.data import month_bounds
from schemas.money import usd_exact
from schemas.settings import Settings
from tests.console.conftest import EXAMPLES
from tests.deployment import Deployment, deployed
from workloads.generators import synthetic

pytestmark = pytest.mark.stack
BERLIN = ZoneInfo("Europe/Berlin")  # acme's zone (examples/budgets.yaml)


@pytest.fixture(scope="module")
def seeded(stack: Settings) -> Iterator[Deployment]:
    """One deployment for every report test: the example budgets, and usage from 20 days before last
    month to yesterday (some of last month's with no department), through the worker."""
    with deployed(stack) as dep:
        assert dep.cli("budgets", "apply", str(EXAMPLES / "budgets.yaml")).returncode == 0
        today = datetime.now(UTC).date()
        month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        first = datetime(month.year, month.month, 1, tzinfo=UTC) - timedelta(days=20)
        events = list(synthetic((datetime.now(UTC) - first).days, 110, first, prefix="report"))
        events += [
            msgspec.structs.replace(e, event_id=e.event_id + "-x", department_id=None)
            for e in events
            if e.org_id == "acme" and e.occurred_at.month == month.month and e.occurred_at.day in (3, 4)
        ]
        dep.start_worker()
        dep.send(events)
        dep.wait_for(lambda: dep.ch_rows() == len(events), 180, "the events in ClickHouse")
        yield dep


def raw_total(dep: Deployment, org: str, start: datetime, end: datetime, where: str = "") -> int:
    db = dep.settings.clickhouse.database
    return int(
        dep.ch().command(
            f"SELECT sum(cost_nanos) FROM {db}.usage_events WHERE org_id = '{org}' "
            f"AND occurred_at >= '{start:%Y-%m-%d %H:%M:%S}' AND occurred_at < '{end:%Y-%m-%d %H:%M:%S}'{where}"
        )
    )


def test_every_format_of_the_monthly_summary_equals_clickhouse(seeded: Deployment, tmp_path: Path) -> None:
    dep = seeded
    today = datetime.now(UTC).date()
    month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)  # the month before this one
    out = tmp_path / "out"
    made = dep.cli(
        "reports",
        "generate",
        "--org",
        "acme",
        "--month",
        f"{month:%Y-%m}",
        "--format",
        "pdf,xlsx,csv",
        "--out",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    start, end = month_bounds(month, "Europe/Berlin")  # acme's time zone
    total = raw_total(dep, "acme", start, end)
    eng = raw_total(dep, "acme", start, end, " AND department_id = 'eng'")
    assert total > eng > 0
    pdf_name = f"spendstream-acme-monthly-{month:%Y-%m}.pdf"
    assert (out / pdf_name).exists(), sorted(p.name for p in out.iterdir())

    # CSV: each breakdown sums to the month; department eng to its own
    for name in ("department", "model", "provider", "feature"):
        path = out / pdf_name.replace(".pdf", f"-{name}.csv")
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        assert sum(int(r["cost_nanos"]) for r in rows) == total, name
        assert all(r["cost_usd"] == usd_exact(int(r["cost_nanos"])) for r in rows)
    departments = {
        r["department"]: int(r["cost_nanos"])
        for r in csv.DictReader(io.StringIO((out / pdf_name.replace(".pdf", "-department.csv")).read_text()))
    }
    assert departments["eng"] == eng

    # XLSX: the totals row of each breakdown, exact in nano-USD
    book = openpyxl.load_workbook(out / pdf_name.replace(".pdf", ".xlsx"), data_only=True)
    for sheet_name in ("By department", "By model", "By provider", "By feature"):
        sheet = book[sheet_name]
        header = [c.value for c in sheet[4]]
        nanos = header.index("Cost (nano-USD)")
        rows = list(sheet.iter_rows(min_row=5, values_only=True))
        total_row = next(r for r in rows if r[0] == "Total")
        assert total_row[nanos] == total, sheet_name
        assert sum(r[nanos] for r in rows if r[0] != "Total") == total

    # PDF: the headline and every breakdown's total, exact
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(out / pdf_name).pages)
    assert text.count(usd_exact(total)) >= 5  # the headline and four breakdown totals
    assert usd_exact(eng) in text or f"{eng / 1e9:,.2f}" in text
    assert "Budgets against actuals" in text and "department/eng/daily" in text.replace("\n", "")  # a cell may wrap

    # Feature ROI of the same month: cost per feature and retention from the month before, as ClickHouse counts them
    roi = dep.cli(
        "reports",
        "generate",
        "--kind",
        "feature-roi",
        "--org",
        "acme",
        "--month",
        f"{month:%Y-%m}",
        "--format",
        "csv",
        "--out",
        str(out),
    )
    assert roi.returncode == 0, roi.stderr
    before, _ = month_bounds((month - timedelta(days=1)).replace(day=1), "Europe/Berlin")
    db = dep.settings.clickhouse.database
    users = (
        dep.ch()
        .query(
            "SELECT feature, groupUniqArrayIf(user_id, occurred_at >= %(s)s), "
            "groupUniqArrayIf(user_id, occurred_at < %(s)s), sumIf(cost_nanos, occurred_at >= %(s)s) "
            f"FROM {db}.usage_events WHERE org_id = 'acme' AND occurred_at >= %(b)s "
            "AND occurred_at < %(e)s GROUP BY feature",
            parameters={"s": start, "b": before, "e": end},
        )
        .result_rows
    )
    rows = {
        r["feature"]: r
        for r in csv.DictReader(
            io.StringIO((out / f"spendstream-acme-feature-roi-{month:%Y-%m}-features.csv").read_text())
        )
    }
    assert sum(int(r["cost_nanos"]) for r in rows.values()) == total
    for feature, now_users, then_users, cost in users:
        if not cost:
            continue
        row = rows[feature]
        assert int(row["cost_nanos"]) == cost and int(row["users"]) == len(now_users)
        kept = len(set(now_users) & set(then_users))
        assert (
            float(row["retention"]) == pytest.approx(kept / len(then_users)) if then_users else row["retention"] == ""
        )


def test_bad_input_names_the_field(seeded: Deployment) -> None:
    dep = seeded
    future = date.today().replace(day=1) + timedelta(days=40)
    cases = [
        (["--month", "2026-13"], "month"),
        (["--month", f"{future:%Y-%m}"], "month"),
        (["--format", "docx"], "format"),
        (["--org", "nobody-here"], "org"),
    ]
    for args, field in cases:
        argv = (
            ["reports", "generate", "--org", "acme", *args] if "--org" not in args else ["reports", "generate", *args]
        )
        answer = dep.cli(*argv)
        assert answer.returncode == 2 and f"error: {field}:" in answer.stderr, (args, answer.stderr)


def test_a_custom_report_narrows_groups_and_cuts_as_asked(seeded: Deployment, tmp_path: Path) -> None:
    dep = seeded
    today = datetime.now(UTC).date()
    first = datetime(today.year, today.month, 1, tzinfo=UTC) - timedelta(days=40)
    start = (first + timedelta(days=5)).date()
    last = (first + timedelta(days=30)).date()
    args = ["--kind", "custom", "--org", "acme", "--from", start.isoformat(), "--to", last.isoformat()]
    args += ["--group", "user", "--granularity", "week", "--department", "eng", "--format", "csv,xlsx"]
    made = dep.cli("reports", "generate", *args, "--out", str(tmp_path))
    assert made.returncode == 0, made.stderr
    begin = datetime(start.year, start.month, start.day, tzinfo=BERLIN).astimezone(UTC)  # acme's days
    end = (datetime(last.year, last.month, last.day, tzinfo=BERLIN) + timedelta(days=1)).astimezone(UTC)
    eng = raw_total(dep, "acme", begin, end, " AND department_id = 'eng'")
    by_user = next(tmp_path.glob("*-by_user.csv"))
    rows = list(csv.DictReader(io.StringIO(by_user.read_text())))
    assert rows and all(r["user"].startswith("eng-") for r in rows)
    assert sum(int(r["cost_nanos"]) for r in rows) == eng
    by_week = next(tmp_path.glob("*-by_week.csv"))
    assert sum(int(r["cost_nanos"]) for r in csv.DictReader(io.StringIO(by_week.read_text()))) == eng
    bad = dep.cli("reports", "generate", "--kind", "custom", "--org", "acme", "--group", "team")
    assert bad.returncode == 2 and "error: group:" in bad.stderr


def test_the_chargeback_charges_every_nano_usd_to_a_cost_centre(seeded: Deployment, tmp_path: Path) -> None:
    dep = seeded
    today = datetime.now(UTC).date()
    month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    made = dep.cli(
        "reports",
        "generate",
        "--kind",
        "chargeback",
        "--org",
        "acme",
        "--month",
        f"{month:%Y-%m}",
        "--format",
        "csv,pdf",
        "--out",
        str(tmp_path),
    )
    assert made.returncode == 0, made.stderr
    start, end = month_bounds(month, "Europe/Berlin")
    total = raw_total(dep, "acme", start, end)
    unowned = raw_total(dep, "acme", start, end, " AND department_id = ''")
    assert total > unowned > 0
    rows = list(
        csv.DictReader(io.StringIO((tmp_path / f"spendstream-acme-chargeback-{month:%Y-%m}-charges.csv").read_text()))
    )
    assert sum(int(r["charged_nanos"]) for r in rows) == total
    assert sum(int(r["allocated_nanos"]) for r in rows) == unowned
    assert {r["department"]: r["cost_centre"] for r in rows}["eng"] == "CC-1010"
    text = "\n".join(
        p.extract_text() for p in pypdf.PdfReader(tmp_path / f"spendstream-acme-chargeback-{month:%Y-%m}.pdf").pages
    )
    assert usd_exact(total) in text and "proportional to usage" in text

    # the same month as a general-ledger journal: balanced, in cents, the total rounded once
    journal = dep.cli(
        "reports",
        "generate",
        "--kind",
        "ledger",
        "--org",
        "acme",
        "--month",
        f"{month:%Y-%m}",
        "--format",
        "csv",
        "--out",
        str(tmp_path),
    )
    assert journal.returncode == 0, journal.stderr
    lines = list(
        csv.DictReader(io.StringIO((tmp_path / f"spendstream-acme-ledger-{month:%Y-%m}-journal.csv").read_text()))
    )
    debits = sum(int(r["debit_nanos"]) for r in lines if r["debit_nanos"])
    credits = sum(int(r["credit_nanos"]) for r in lines if r["credit_nanos"])
    assert debits == credits == round(total / 10**7) * 10**7
    assert {r["account"] for r in lines} == {"6420", "2100"} and "CC-1010" in {r["cost_centre"] for r in lines}


def test_a_saved_template_is_listed_run_and_deleted(seeded: Deployment, tmp_path: Path) -> None:
    dep = seeded
    berlin = BERLIN  # the template's days are acme's days
    today = datetime.now(berlin).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=berlin)
    save = ["reports", "save", "--org", "acme", "--template", "eng-week", "--kind", "custom", "--days", "7"]
    save += ["--group", "user", "--department", "eng", "--format", "csv"]
    save += ["--recipient", "cfo@acme.example", "--schedule", "0 8 * * 1"]
    saved = dep.cli(*save)
    assert saved.returncode == 0 and "next run" in saved.stdout, saved.stderr
    bad = dep.cli("reports", "save", "--org", "acme", "--template", "x", "--schedule", "every monday")
    assert bad.returncode == 2 and "error: schedule:" in bad.stderr
    listed = dep.cli("reports", "list", "--org", "acme")
    assert "eng-week" in listed.stdout and "0 8 * * 1" in listed.stdout
    ran = dep.cli("reports", "generate", "--org", "acme", "--template", "eng-week", "--out", str(tmp_path))
    assert ran.returncode == 0, ran.stderr
    first, last = today - timedelta(days=7), today - timedelta(days=1)
    zone_start = datetime(first.year, first.month, first.day, tzinfo=berlin)
    eng = raw_total(dep, "acme", zone_start.astimezone(UTC), midnight.astimezone(UTC), " AND department_id = 'eng'")
    rows = list(csv.DictReader(io.StringIO(next(tmp_path.glob("*-by_user.csv")).read_text())))
    assert sum(int(r["cost_nanos"]) for r in rows) == eng > 0 and f"{first}_{last}" in next(tmp_path.glob("*.csv")).name
    assert dep.cli("reports", "delete", "--org", "acme", "--template", "eng-week").returncode == 0
    assert "eng-week" not in dep.cli("reports", "list", "--org", "acme").stdout

    # a template narrowed to one project (acme declares project in examples/budgets.yaml)
    apollo = ["reports", "save", "--org", "acme", "--template", "apollo-week", "--kind", "custom", "--days", "7"]
    assert dep.cli(*apollo, "--group", "department", "--tag", "project", "--format", "csv").returncode == 2
    assert dep.cli(*apollo, "--group", "department", "--tag", "project=apollo", "--format", "csv").returncode == 0
    out = tmp_path / "apollo"
    ran = dep.cli("reports", "generate", "--org", "acme", "--template", "apollo-week", "--out", str(out))
    assert ran.returncode == 0, ran.stderr
    rows = list(csv.DictReader(io.StringIO(next(out.glob("*-by_department.csv")).read_text())))
    apollo_total = raw_total(
        dep, "acme", zone_start.astimezone(UTC), midnight.astimezone(UTC), " AND tags['project'] = 'apollo'"
    )
    assert sum(int(r["cost_nanos"]) for r in rows) == apollo_total > 0
    assert "Filtered to project apollo" in next(out.glob("*-about.txt")).read_text()
