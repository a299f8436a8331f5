"""Every report kind's PDF, read as a finance user reads it: the words of every page, with their boxes
(``pdftotext -bbox``), never overlap on a line and never leave the page, with long department, model
and feature names and totals in the billions."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pdfplumber
import pytest

from reports.chargeback import ChargebackData, chargeback_report
from reports.custom import CustomData, custom_report
from reports.feature_roi import FeatureData, FeatureUsage, feature_roi_report
from reports.filters import CostFilter
from reports.ledger import ledger_report
from reports.model import Report
from reports.model_value import ModelStats, ModelValueData, model_value_report
from reports.monthly import BudgetActual, MonthlyData, monthly_report
from reports.pdf_layout import breakable, layout_table, text_width
from reports.render_pdf import render_pdf
from schemas.cost_allocation import parse_chargeback
from schemas.pricing import TokenPrices

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
MONTH, LAST = date(2026, 11, 1), date(2026, 11, 30)
DEPARTMENTS = ["research-and-development-platform-engineering-emea", "sales", "customer-support-tier-two-escalations"]
MODELS = ["anthropic/claude-3-5-sonnet-20241022-extended-context", "gpt-4o-mini", "gemini-1.5-pro-002-long"]
FEATURES = ["autocomplete-inline-suggestions-for-enterprise-ide", "chat", "document-summarisation-and-translation"]
BIG = 121_894_716_100_000  # $121,894.72: totals long enough to crowd a column


def _monthly() -> Report:
    data = MonthlyData("acme", MONTH, "Europe/Berlin", NOW)
    data.by_department = [(d, 25_198, 9_000_000, BIG // (i + 1)) for i, d in enumerate(DEPARTMENTS)]
    data.by_model = [(m, 25_198, 9_000_000, BIG // (i + 2)) for i, m in enumerate(MODELS)]
    data.by_provider = [("openai", 25_198, 9_000_000, BIG)]
    data.by_feature = [(f, 25_198, 9_000_000, BIG // (i + 3)) for i, f in enumerate(FEATURES)]
    data.top_users = [(f"{d}-user-with-a-long-email@example.com", 10, 1_000, BIG // 7) for d in DEPARTMENTS]
    data.daily = [(MONTH + timedelta(days=d), BIG // 30) for d in range(30)]
    data.previous_cost = BIG // 2
    data.forecast = (1e14, 1.2e14, 1.5e14)
    data.budgets = [BudgetActual(f"department/{DEPARTMENTS[0]}/monthly", "hard", BIG, BIG // 2, 3, 1)]
    data.alerts = [
        (NOW, "budget_stage", f"department/{DEPARTMENTS[0]}", "2026-11", 80, "finance-slack-channel", "sent")
    ]
    return monthly_report(data)


def _chargeback_data() -> ChargebackData:
    rule = parse_chargeback(
        {"cost_centres": {d: f"CC-{4040 + i}-{d[:12].upper()}" for i, d in enumerate(DEPARTMENTS)}},
        "chargeback",
    )
    data = ChargebackData("acme", MONTH, LAST, "Europe/Berlin", NOW, rule)
    data.spend = {d: (25_198, BIG // (i + 1)) for i, d in enumerate(DEPARTMENTS)} | {"": (12, 7_500_000)}
    return data


def _feature_roi() -> Report:
    data = FeatureData("acme", MONTH, LAST, "Europe/Berlin", NOW)
    data.features = [FeatureUsage(f, BIG // (i + 1), 25_198, 9_000_000, 300, 200, 250) for i, f in enumerate(FEATURES)]
    data.weekly = [(f, MONTH + timedelta(days=7 * w), 100, 2_000) for f in FEATURES for w in range(5)]
    return feature_roi_report(data)


def _model_value() -> Report:
    data = ModelValueData("acme", MONTH, LAST, "Europe/Berlin", NOW)
    data.stats = [
        ModelStats(f, "openai", m, 25_198, 12, 9_000_000, 900_000, 100_000, 0, 0, BIG // 9, 480.0, 950.0, 25_198)
        for f in FEATURES
        for m in MODELS
    ]
    data.prices = {
        ("openai", m): TokenPrices(Decimal("0.000005") / (i + 1), Decimal("0.00001")) for i, m in enumerate(MODELS)
    }
    return model_value_report(data)


def _custom() -> Report:
    f = CostFilter(MONTH, LAST, "Europe/Berlin", "week", "department", department=DEPARTMENTS[0], model=MODELS[0])
    data = CustomData("acme", f, NOW)
    data.rows = [(d, 25_198, 9_000_000, 900_000, 9_900_000, BIG // (i + 1)) for i, d in enumerate(DEPARTMENTS)]
    weeks = [(MONTH + timedelta(days=7 * w)).isoformat() for w in range(5)]
    data.series = [(week, 25_198, 9_000_000, 900_000, 9_900_000, BIG // 5) for week in weeks]
    return custom_report(data)


KINDS = {
    "monthly": _monthly,
    "chargeback": lambda: chargeback_report(_chargeback_data()),
    "ledger": lambda: ledger_report(_chargeback_data()),
    "feature-roi": _feature_roi,
    "model-value": _model_value,
    "custom": _custom,
}


MARGIN = 1.8 / 2.54 * 72  # the template's left and right margins, points: a chart's label clipped at its
# edge is still in the text layer, past the margin


def _upright_chars(pdf: bytes) -> list[tuple[float, float, list[dict[str, Any]]]]:
    """Each page's size and its upright characters (a chart's rotated axis labels are left out)."""
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        return [(page.width, page.height, [c for c in page.chars if c["upright"]]) for page in document.pages]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_two_words_overlap_and_every_word_is_inside_the_margins(kind: str) -> None:
    """Characters, not words: two cells run together read as one word ("researCC-4040"). The overlap check
    reads the text set at 10 pt or less (tables, their notes, the body): a chart's axis labels, set by
    Vega-Lite in its own sizes, are checked on the page only."""
    problems = []
    for number, (width, height, chars) in enumerate(_upright_chars(render_pdf(KINDS[kind]())), start=1):
        lines: dict[int, list[dict[str, Any]]] = {}
        for c in chars:
            if c["x0"] < MARGIN - 1 or c["top"] < 0 or c["x1"] > width - MARGIN + 1 or c["bottom"] > height:
                problems.append(f"page {number}: {c['text']!r} leaves the text area at x {c['x0']:.0f}-{c['x1']:.0f}")
            if c["size"] <= 10:
                lines.setdefault(round(c["bottom"]), []).append(c)
        for line in lines.values():
            line.sort(key=lambda c: c["x0"])
            reach, text = line[0]["x1"], line[0]["text"]
            for c in line[1:]:
                if c["x0"] < reach - 0.2 * c["size"]:  # more than a kerning pair's tuck ("To", "TC")
                    problems.append(f"page {number}: {c['text']!r} overlaps the text before it, ending {text!r}")
                if c["x1"] > reach:
                    reach = c["x1"]
                text = (text + c["text"])[-20:]
    assert not problems, problems[:10]


def test_a_long_name_gets_break_opportunities_and_numbers_keep_their_width() -> None:
    name = "autocomplete-inline-suggestions-for-enterprise-ide"
    broken = breakable(name, 60.0, 9.0)
    assert broken.replace("\u200b", "") == name
    assert all(text_width(piece, 9.0) <= 60.0 for piece in broken.split("\u200b"))
    fit = layout_table(["Feature", "Cost"], [[name, "$121,894,716.10"]], [False, True], ["Total", "$121,894,716.10"])
    assert fit.widths[1] >= text_width("$121,894,716.10", fit.size)  # the bold total's width
    assert sum(fit.widths) <= 493.0
