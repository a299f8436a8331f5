"""Department chargeback and feature ROI: the org's cost centres and rule, parsed with errors naming the field,
an allocation that never loses or invents a nano-USD, and feature ROI's per-user figures."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports.chargeback import ChargebackData, chargeback_report
from schemas.budget_file import BudgetFileError, parse_budget_file
from schemas.config_records import ConfigState, file_records
from schemas.cost_allocation import Chargeback, ChargebackError, allocate, parse_chargeback


@given(st.integers(0, 10**15), st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 10**12), max_size=8))
def test_allocation_is_exact(amount: int, weights: dict[str, int]) -> None:
    shares = allocate(amount, weights)
    assert set(shares) == set(weights)
    if sum(weights.values()):
        assert sum(shares.values()) == amount
        for k, w in weights.items():  # each within one nano-USD of its exact share
            assert abs(shares[k] * sum(weights.values()) - amount * w) < sum(weights.values())
    else:
        assert not any(shares.values())


def test_the_rule_is_read_from_the_budgets_file_and_survives_the_config_topic() -> None:
    text = """
orgs:
  acme:
    timezone: Europe/Berlin
    chargeback: {cost_centres: {eng: CC-1010, sales: CC-2020}, unallocated: {eng: 70, sales: 30}}
budgets: []
"""
    parsed = parse_budget_file(text)
    state = ConfigState()
    for record in file_records(parsed, ConfigState())[0]:
        state.apply(record)
    chargeback = state.orgs["acme"].chargeback
    assert chargeback == Chargeback((("eng", "CC-1010"), ("sales", "CC-2020")), (("eng", 70), ("sales", 30)))
    assert chargeback.code("eng") == "CC-1010" and chargeback.rule == "fixed shares"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"unallocated": {"eng": 70, "sales": 20}}, "c.unallocated"),
        ({"unallocated": "evenly"}, "c.unallocated"),
        ({"unallocated": {"eng": -1, "sales": 101}}, "c.unallocated"),
        ({"cost_centres": {"eng": ""}}, "c.cost_centres"),
        ({"colour": "red"}, "c.colour"),
    ],
)
def test_a_bad_rule_names_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ChargebackError) as info:
        parse_chargeback(spec, "c")
    assert info.value.field == field
    with pytest.raises(BudgetFileError) as file_error:
        parse_budget_file(f"orgs: {{acme: {{chargeback: {spec}}}}}".replace("'", '"'))
    assert file_error.value.field.startswith("orgs.acme.chargeback")


def test_the_charges_add_up_to_the_month_and_show_the_allocation() -> None:
    rule = Chargeback((("eng", "CC-1010"),), ())
    data = ChargebackData("acme", date(2026, 11, 1), date(2026, 11, 30), "UTC", datetime(2026, 12, 1, tzinfo=UTC), rule)
    data.spend = {"eng": (10, 2_000_000_001), "sales": (5, 1_000_000_000), "": (3, 100)}
    report = chargeback_report(data)
    charges = report.tables[0]
    assert [r[0] for r in charges.rows] == ["eng", "sales"]
    assert charges.rows[0][1] == "CC-1010" and charges.rows[1][1] == "(no cost centre)"
    assert [r[4] for r in charges.rows] == [67, 33]  # 100 nano-USD shared 2:1, the odd one to the larger remainder
    assert charges.totals()[5] == 3_000_000_101  # everything, exactly
    assert report.figures[1].value == 100 and "proportional" in report.tables[1].note


def test_feature_roi_rows_cost_per_user_and_retention() -> None:
    from reports.feature_roi import FeatureData, FeatureUsage, feature_roi_report

    data = FeatureData("acme", date(2026, 11, 1), date(2026, 11, 30), "UTC", datetime(2026, 12, 1, tzinfo=UTC))
    data.features = [FeatureUsage("chat", 9_000, 30, 300, 3, 2, 4), FeatureUsage("search", 1_000, 10, 100, 0, 0, 0)]
    data.weekly = [("chat", date(2026, 11, 2), 3, 30)]
    report = feature_roi_report(data)
    rows = report.tables[0].rows
    assert rows[0] == ("chat", 9_000, 30, 3, 3_000, 300, 0.5, 4)
    assert rows[1][4] is None and rows[1][6] is None  # no users: no cost per user, no retention
    assert report.figures[2].value == 3_000 and report.figures[2].detail == "chat"
    assert report.slug == "spendstream-acme-feature-roi-2026-11"
    assert report.tables[1].rows == [("chat", date(2026, 11, 2), 3, 30, "7")]


def test_weeks_the_month_starts_or_ends_in_are_marked_partial() -> None:
    from reports.feature_roi import FeatureData, feature_roi_report

    data = FeatureData("acme", date(2026, 11, 1), date(2026, 11, 30), "UTC", datetime(2026, 12, 1, tzinfo=UTC))
    data.weekly = [
        ("chat", date(2026, 10, 26), 1, 1),
        ("chat", date(2026, 11, 9), 2, 2),
        ("chat", date(2026, 11, 30), 3, 3),
    ]
    days = [row[4] for row in feature_roi_report(data).tables[1].rows]
    assert days == ["partial: 1 of 7", "7", "partial: 1 of 7"]  # Sunday the 1st; Monday the 30th


def test_model_value_suggests_only_a_cheaper_comparable_model() -> None:
    from decimal import Decimal

    from reports.model_value import ModelStats, ModelValueData, model_value_report, priced
    from schemas.pricing import TokenPrices

    def stats(model: str, requests: int, errors: int, p95: float | None) -> ModelStats:
        return ModelStats(
            "chat", "openai", model, requests, errors, 1_000_000, 100_000, 0, 0, 0, 9_000_000_000, 100.0, p95
        )

    data = ModelValueData("acme", date(2026, 11, 1), date(2026, 11, 30), "UTC", datetime(2026, 12, 1, tzinfo=UTC))
    big, small, flaky, slow = (
        stats("big", 100, 1, 900.0),
        stats("small", 100, 1, 950.0),
        stats("flaky", 100, 9, 500.0),
        stats("slow", 100, 0, 5000.0),
    )
    data.stats = [big, small, flaky, slow]
    data.prices = {
        ("openai", "big"): TokenPrices(Decimal("0.000005"), Decimal("0.000015")),
        ("openai", "small"): TokenPrices(Decimal("0.000001"), Decimal("0.000002")),
        ("openai", "flaky"): TokenPrices(Decimal("0.0000001"), Decimal("0.0000001")),  # cheapest, but 9 % errors
        ("openai", "slow"): TokenPrices(Decimal("0.0000002"), Decimal("0.0000002")),  # cheap, but a p95 of 5 s
    }
    assert priced(big, data.prices[("openai", "big")]) == 5_000_000_000 + 1_500_000_000
    report = model_value_report(data)
    moves = {row[1]: row for row in report.tables[1].rows}
    assert moves["big"][2] == "openai/small" and moves["big"][5] == 6_500_000_000 - 1_200_000_000
    assert "flaky" not in moves or moves["flaky"][2] != "openai/slow"  # slow is 10x flaky's p95
    assert report.figures[1].detail.startswith("an estimate")
    assert report.tables[0].rows[0][4] == 90_000_000 and report.tables[0].rows[0][6] == 0.01


def test_the_ledger_journal_balances_in_cents_and_maps_cost_centres_and_accounts() -> None:
    from reports.ledger import ledger_report

    rule = parse_chargeback(
        {"cost_centres": {"eng": "CC-1010", "sales": "CC-2020"}, "accounts": {"expense": "6420", "accrual": "2100"}},
        "c",
    )
    data = ChargebackData("acme", date(2026, 11, 1), date(2026, 11, 30), "UTC", datetime(2026, 12, 1, tzinfo=UTC), rule)
    data.spend = {"eng": (3, 1_004_999_999), "sales": (2, 2_004_999_999), "": (1, 1)}  # 3.009999999 USD in all
    lines = ledger_report(data).tables[0].rows
    debits = {row[3]: row[4] for row in lines if row[4]}
    credit = next(row for row in lines if row[5])
    assert (
        set(debits) == {"CC-1010", "CC-2020"}
        and credit[2] == "2100"
        and all(row[2] == "6420" for row in lines if row[4])
    )
    assert sum(debits.values()) == credit[5] == 301 * 10**7  # 3.01 USD: the total rounded once, and balanced
    assert all(v % 10**7 == 0 for v in debits.values())  # whole cents
    with pytest.raises(ChargebackError) as info:
        parse_chargeback({"accounts": {"expense": ""}}, "c")
    assert info.value.field == "c.accounts"


def _model_stats(model: str, p95: float | None, requests: int = 100, errors: int = 1) -> Any:
    from reports.model_value import ModelStats

    p50 = None if p95 is None else p95 / 2
    reported = 0 if p95 is None else requests
    tokens = (1_000_000, 100_000, 0, 0, 0)
    return ModelStats("chat", "openai", model, requests, errors, *tokens, 9_000_000_000, p50, p95, reported)


def _model_data(*stats: Any) -> Any:
    from decimal import Decimal

    from reports.model_value import ModelValueData
    from schemas.pricing import TokenPrices

    data = ModelValueData("acme", date(2026, 11, 1), date(2026, 11, 30), "UTC", datetime(2026, 12, 1, tzinfo=UTC))
    data.stats = list(stats)
    data.prices = {
        ("openai", "big"): TokenPrices(Decimal("0.000005"), Decimal("0.000015")),
        ("openai", "small"): TokenPrices(Decimal("0.000001"), Decimal("0.000002")),
    }
    return data


def test_model_value_proposes_no_move_without_latencies_for_both_models() -> None:
    """ClickHouse's quantiles of no latency are [0, 0]: read as measured, every model passed the latency test
    and the report proposed moving everything to the cheapest one."""
    from reports.model_value import model_value_report

    for stats in ((_model_stats("big", None), _model_stats("small", None)),
                  (_model_stats("big", 900.0), _model_stats("small", None)),
                  (_model_stats("big", None), _model_stats("small", 300.0))):  # fmt: skip
        report = model_value_report(_model_data(*stats))
        assert report.tables[1].rows == []
        assert report.figures[1].value == 0 and "none proposed without latencies" in report.figures[1].detail
        assert "no latency was reported" in report.sections[1].text
    models = model_value_report(_model_data(_model_stats("big", None))).tables[0]
    assert models.rows[0][7] is None and models.columns[7].missing == "not reported"


def test_a_proposed_move_names_the_evidence_it_rests_on() -> None:
    from reports.model_value import model_value_report

    report = model_value_report(_model_data(_model_stats("big", 900.0), _model_stats("small", 950.0, 400, 2)))
    (move,) = report.tables[1].rows
    assert move[2] == "openai/small"
    assert move[6] == "big: errors 1.0% of 100, p95 900 ms of 100; small: errors 0.5% of 400, p95 950 ms of 400"


def test_unit_costs_print_with_their_significant_figures_in_pdf_and_xlsx(tmp_path: Path) -> None:
    """A cost per request of about half a cent printed as $0.00 in the PDF and the XLSX."""
    import subprocess

    import openpyxl

    from reports.feature_roi import FeatureData, FeatureUsage, feature_roi_report
    from reports.files import Format, write_report

    data = FeatureData("acme", date(2026, 11, 1), date(2026, 11, 30), "UTC", datetime(2026, 12, 1, tzinfo=UTC))
    data.features = [FeatureUsage("chat", 48_200_000, 10, 300, 3, 2, 4)]  # $0.0482 over 10 requests
    report = feature_roi_report(data)
    paths = write_report(report, [Format.PDF, Format.XLSX], tmp_path, progress=lambda _: None)
    text = subprocess.run(["pdftotext", "-layout", str(paths[0]), "-"], capture_output=True, text=True, check=True)
    assert "$0.00482" in text.stdout and "$0.0161" in text.stdout  # per request; per active user ($0.0482 / 3)
    sheet = openpyxl.load_workbook(paths[1])[report.tables[0].title[:31]]
    cells = [c for row in sheet.iter_rows() for c in row if c.value == 0.00482]
    assert cells and cells[0].number_format == "$#,##0.000000"


def test_spend_with_no_department_and_nobody_to_share_it_is_charged_and_journalled() -> None:
    """An org whose spend named no department got an empty charges table and a journal crediting 0.00."""
    from reports.ledger import ledger_report

    rule = parse_chargeback({"unallocated_cost_centre": "CC-9999"}, "c")
    data = ChargebackData("acme", date(2026, 11, 1), date(2026, 11, 30), "UTC", datetime(2026, 12, 1, tzinfo=UTC), rule)
    data.spend = {"": (3, 7_500_000)}
    report = chargeback_report(data)
    assert report.tables[0].rows == [("(no department)", "CC-9999", 3, 7_500_000, 0, 7_500_000)]
    assert report.tables[0].totals()[5] == 7_500_000 == report.figures[0].value
    assert "every nano-USD is allocated" not in report.tables[1].note and "CC-9999" in report.tables[1].note
    lines = ledger_report(data).tables[0].rows
    debit = sum(int(row[4] or 0) for row in lines)  # type: ignore[call-overload]
    credit = sum(int(row[5] or 0) for row in lines)  # type: ignore[call-overload]
    assert debit == credit == 10_000_000  # $0.0075, rounded once to the cent: $0.01 both sides
    assert [row[3] for row in lines if row[4]] == ["CC-9999"]


def test_a_department_without_a_cost_centre_goes_to_the_default_or_refuses_the_journal() -> None:
    from reports.ledger import ledger_report
    from schemas.report_kinds import ReportError

    when = (date(2026, 11, 1), date(2026, 11, 30), "UTC", datetime(2026, 12, 1, tzinfo=UTC))
    spend = {"eng": (1, 2_000_000_000), "ops": (1, 1_000_000_000)}
    strict = ChargebackData("acme", *when, parse_chargeback({"cost_centres": {"eng": "CC-1"}}, "c"))
    strict.spend = spend
    with pytest.raises(ReportError) as info:
        ledger_report(strict)
    assert info.value.field == "chargeback.cost_centres" and "'ops'" in info.value.reason
    lenient = ChargebackData(
        "acme", *when, parse_chargeback({"cost_centres": {"eng": "CC-1"}, "default_cost_centre": "CC-0"}, "c")
    )
    lenient.spend = spend
    posted = {row[3]: row[4] for row in ledger_report(lenient).tables[0].rows if row[4]}
    assert posted == {"CC-1": 2_000_000_000, "CC-0": 1_000_000_000}
    assert parse_chargeback(lenient.rule.body(), "c") == lenient.rule  # survives the config topic
