"""Chargeback by an allocation tag (project chargeback): the tag's values take the departments' place, spend the
tag left untagged is shared out by the org's rule, and debits equal credits equal the month's spend."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from reports.chargeback import ChargebackData, chargeback_report
from reports.ledger import ledger_report
from schemas.budget_file import BudgetFileError, parse_budget_file
from schemas.cost_allocation import parse_chargeback

WHEN = (date(2026, 11, 1), date(2026, 11, 30), "UTC", datetime(2026, 12, 1, tzinfo=UTC))


def test_a_project_chargeback_shares_untagged_spend_and_balances() -> None:
    rule = parse_chargeback(
        {"by": "project", "cost_centres": {"apollo": "CC-AP", "gemini": "CC-GE"}, "default_cost_centre": "CC-0"}, "c"
    )
    data = ChargebackData("acme", *WHEN, rule)
    data.spend = {"apollo": (3, 3_000_000_001), "gemini": (1, 1_000_000_000), "": (2, 1_000_000_002)}
    report = chargeback_report(data)
    assert report.title == "Project chargeback"
    charges = report.tables[0]
    assert charges.title == "Charges by project" and charges.columns[0].label == "Project"
    rows = {row[0]: row for row in charges.rows}
    # the untagged 1,000,000,002 by 3,000,000,001 : 1,000,000,000: floors 750,000,001 and 250,000,000, and the
    # one nano-USD left to the larger remainder (apollo's 2,250,000,001 against gemini's 1,750,000,000 of 4e9+1)
    assert rows["apollo"][1] == "CC-AP" and rows["apollo"][4] == 750_000_002
    assert rows["gemini"][4] == 250_000_000
    assert sum(int(row[5]) for row in charges.rows) == 5_000_000_003  # every nano-USD, once
    lines = ledger_report(data).tables[0].rows
    debits = sum(int(row[4]) for row in lines if row[4])
    credit = next(int(row[5]) for row in lines if row[5])
    assert debits == credit == 500 * 10**7  # 5.00 USD: the total rounded once, balanced
    assert all(str(row[7]).startswith("AI usage 2026-11 by project") for row in lines)


def test_with_no_tagged_spend_the_untagged_goes_to_the_unallocated_centre() -> None:
    data = ChargebackData("acme", *WHEN, parse_chargeback({"by": "customer", "unallocated_cost_centre": "CC-9"}, "c"))
    data.spend = {"": (5, 7_000)}
    (row,) = chargeback_report(data).tables[0].rows
    assert row[:2] == ("(no customer)", "CC-9") and row[5] == 7_000


def test_the_tag_charged_by_must_be_declared() -> None:
    text = "orgs:\n  acme:\n    tags: [customer]\n    chargeback: {by: project}\n"
    with pytest.raises(BudgetFileError) as caught:
        parse_budget_file(text)
    assert (
        caught.value.field == "orgs.acme" and "'project' is not one of the org's allocation tags" in caught.value.reason
    )
    ok = parse_budget_file(text.replace("[customer]", "[customer, project]")).orgs["acme"]
    assert ok.chargeback is not None and ok.chargeback.by == "project"
    assert ok.chargeback.body()["by"] == "project"
    with pytest.raises(Exception, match="department, or the key"):
        parse_chargeback({"by": "Project"}, "c")
