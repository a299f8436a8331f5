"""The renderers on a report built in the test: every total read back from each file, exact to the
nano-USD; the PDF's table header repeats, its pages are numbered, markup in names prints as text; CSV
is RFC 4180 with formulas defused; XLSX has typed cells, frozen headers, filters, formulas, a chart."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pypdf
import pytest

from reports.files import Format, ReportError, parse_formats, write_report
from reports.model import Column, Figure, Kind, Report, Section, Table
from reports.monthly import BudgetActual, MonthlyData, monthly_report
from reports.render_csv import table_csv
from reports.render_pdf import render_pdf
from reports.render_xlsx import render_xlsx
from schemas.money import format_usd, usd_exact

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)


def sample() -> MonthlyData:
    data = MonthlyData("acme", date(2026, 11, 1), "Europe/Berlin", NOW)
    data.by_department = [("eng", 900, 90_000, 12_345_678_901), ("sales", 40, 4_000, 1_000_000_001)]
    data.by_model = [("=cmd|' /C calc'!A0", 500, 50_000, 7_000_000_000), ("$*#[gpt]", 440, 44_000, 6_345_678_902)]
    data.by_provider = [("openai", 940, 94_000, 13_345_678_902)]
    data.by_feature = [(f"feature-{i}", 1, 100, 10) for i in range(120)]  # a table longer than a page
    data.by_feature.append(("chat", 820, 80_000, 13_345_677_702))
    data.top_users = [("eng-u1", 10, 1000, 999_999_999)]
    data.daily = [(date(2026, 11, d), 400_000_000 + d) for d in range(1, 31)]
    data.previous_cost, data.previous_requests = 10_000_000_000, 800
    data.forecast = (11e9, 13e9, 15e9)
    data.budgets = [BudgetActual("department/eng/monthly", "hard", 20_000_000_000, 12_345_678_901, 1, 0)]
    data.alerts = [
        (datetime(2026, 11, 20, 9, tzinfo=UTC), "budget_stage", "department/eng", "2026-11", 50, "ops", "sent")
    ]
    return data


def test_money_is_exact_for_files_and_rounded_half_even_for_reading() -> None:
    assert usd_exact(1_500_000_001) == "1.500000001" and usd_exact(-7) == "-0.000000007"
    assert format_usd(12_345_000_000) == "$12.34" and format_usd(12_355_000_000) == "$12.36"  # half to even
    assert format_usd(12_345_000_001) == "$12.35" and format_usd(-1_004_999_999) == "-$1.00"


def test_csv_is_rfc_4180_with_exact_money_and_no_formulas() -> None:
    report = monthly_report(sample())
    models = next(t for t in report.tables if t.name == "model")
    text = table_csv(models, bom=True)
    assert text.startswith("\ufeffmodel,requests,tokens,cost_usd,cost_nanos,share\r\n")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[1][0] == "'=cmd|' /C calc'!A0" and rows[2][0] == "$*#[gpt]"
    assert sum(int(r[4]) for r in rows[1:]) == 13_345_678_902
    assert rows[2][3] == "6.345678902"


def test_xlsx_reads_back_typed_with_formula_totals_frozen_headers_filters_and_a_chart(tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    path.write_bytes(render_xlsx(monthly_report(sample())))
    book = openpyxl.load_workbook(path, data_only=True)  # the totals' cached values
    assert book.sheetnames[0] == "Summary" and "By department" in book.sheetnames
    sheet = book["By department"]
    assert [c.value for c in sheet[4]] == ["Department", "Requests", "Tokens", "Cost", "Cost (nano-USD)", "Share"]
    assert sheet.freeze_panes == "A5" and sheet.auto_filter.ref == "A4:F6"
    assert sheet["D5"].number_format == "$#,##0.00" and isinstance(sheet["E5"].value, int)
    assert sheet["A7"].value == "Total" and sheet["E7"].value == 13_345_678_902
    assert sheet["D5"].value == pytest.approx(12.345678901)
    formulas = openpyxl.load_workbook(path)["By department"]
    assert formulas["E7"].value == "=SUBTOTAL(109,E5:E6)"
    assert len(formulas._charts) == 1
    assert book["By model"]["A5"].value == "'=cmd|' /C calc'!A0"


def test_pdf_has_a_title_page_numbers_a_repeating_header_and_exact_totals(tmp_path: Path) -> None:
    pdf = render_pdf(monthly_report(sample()))
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    pages = [page.extract_text() for page in reader.pages]
    assert "Monthly usage summary" in pages[0] and "November 2026" in pages[0]
    assert len(pages) >= 4
    assert all(f"page {i + 1} of {len(pages)}" in text for i, text in enumerate(pages) if i > 0)
    feature_pages = [text for text in pages if "feature-1" in text]
    assert len(feature_pages) >= 2 and all("Feature" in text and "Requests" in text for text in feature_pages)
    text = "\n".join(pages)
    assert "13.345678902" in text and "$*#[gpt]" in text  # the exact total; markup printed as text
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "scripts/setup installs poppler-utils"
    (tmp_path / "r.pdf").write_bytes(pdf)
    subprocess.run(
        [pdftoppm, "-png", "-r", "40", "-f", "1", "-l", "2", str(tmp_path / "r.pdf"), str(tmp_path / "p")], check=True
    )
    images = sorted(tmp_path.glob("p-*.png"))
    assert len(images) == 2 and all(image.read_bytes().startswith(b"\x89PNG") for image in images)


def test_files_are_written_whole_or_not_at_all(tmp_path: Path) -> None:
    report = monthly_report(sample())
    paths = write_report(report, [Format.CSV, Format.XLSX], tmp_path, progress=lambda line: None)
    assert {p.suffix for p in paths} == {".csv", ".txt", ".xlsx"} and not list(tmp_path.glob(".*.part"))
    broken = Report(
        "monthly", "x", "acme", date(2026, 11, 1), date(2026, 11, 30), "UTC", NOW, (Figure("bad", "x", Kind.USD),)
    )
    with pytest.raises(ValueError):
        write_report(broken, [Format.XLSX, Format.PDF], tmp_path / "broken", progress=lambda line: None)
    assert not list((tmp_path / "broken").iterdir())
    with pytest.raises(ReportError) as info:
        parse_formats(["pdf,docx"])
    assert info.value.field == "format"


def test_a_table_totals_its_money_exactly() -> None:
    table = Table("t", "T", (Column("k", "K"), Column("cost", "Cost", Kind.USD, total=True)), [("a", 1), ("b", 2)])
    assert table.totals() == ["Total", 3]
    assert Section("s", tables=(table,)).tables[0].totalled


def test_the_top_users_total_says_of_whom_and_no_empty_table_follows_no_alert() -> None:
    data = sample()
    data.top_users = [(f"u{i}", 1, 10, 1_000) for i in range(15)]
    data.alerts = []
    report = monthly_report(data)
    users = next(t for t in report.tables if t.name == "user")
    assert users.totals()[0] == "Total of these 15"  # not the org's total: the top 15 only
    alerts = next(s for s in report.sections if s.title == "Alerts raised")
    assert alerts.text == "No alert was raised this month." and alerts.tables == ()


def test_xlsx_sheet_names_are_cut_at_a_word(tmp_path: Path) -> None:
    from reports.model import Column, Report, Section, Table

    long = Table("t", "Cost per department and feature by week", (Column("a", "A"),), [("x",)])
    report = Report(
        "custom", "Long", "acme", date(2026, 11, 1), date(2026, 11, 30), "UTC", NOW, (), (Section("S", tables=(long,)),)
    )
    path = tmp_path / "r.xlsx"
    path.write_bytes(render_xlsx(report))
    assert "Cost per department and feature" in openpyxl.load_workbook(path).sheetnames  # 31 chars, whole words


def _custom(**narrowing: str) -> Report:
    from reports.custom import CustomData, custom_report
    from reports.filters import CostFilter

    f = CostFilter(date(2026, 11, 1), date(2026, 11, 30), "Europe/Berlin", "day", "model", **narrowing)
    data = CustomData("acme", f, NOW)
    data.rows = [("gpt-4o", 10, 100, 50, 150, 4_000_000_000)]
    data.series = [("2026-11-02", 10, 100, 50, 150, 4_000_000_000)]
    return custom_report(data)


def test_every_file_of_a_filtered_report_says_so_and_its_names_differ(tmp_path: Path) -> None:
    """Only the PDF's second page said "Filtered to model gpt-4o": the cover, the XLSX and the CSVs read as the
    month's total, and two custom reports of one month got one file name."""
    import subprocess

    from reports.files import Format, write_report

    report = _custom(model="gpt-4o")
    said = "Filtered to model gpt-4o"
    paths = write_report(report, [Format.PDF, Format.XLSX, Format.CSV], tmp_path, progress=lambda _: None)
    cover = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(paths[0]), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert said in cover and "November 2026" in cover
    book = openpyxl.load_workbook(paths[1])
    for sheet in book.worksheets:
        assert any(said in str(cell.value) for row in sheet.iter_rows(max_row=3) for cell in row), sheet.title
    about = next(p for p in paths if p.name.endswith("-about.txt")).read_text()
    assert said in about and all(p.name in about for p in paths if p.suffix == ".csv")
    assert report.slug != _custom(model="gpt-4o-mini").slug != _custom().slug
    assert report.slug == _custom(model="gpt-4o").slug and report.slug.startswith("spendstream-acme-custom-2026-11-")
    assert monthly_report(sample()).slug == "spendstream-acme-monthly-2026-11"  # nothing filtered: no digest


def test_the_cover_lists_the_sections_with_their_pages(tmp_path: Path) -> None:
    import subprocess

    report = monthly_report(sample())
    path = tmp_path / "r.pdf"
    path.write_bytes(render_pdf(report))
    cover = subprocess.run(["pdftotext", "-l", "1", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "Contents" in cover and all(section.title in cover for section in report.sections)
