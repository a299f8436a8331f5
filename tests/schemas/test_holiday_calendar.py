"""An org's holiday calendar: set in the budgets file, checked against the holidays package, carried on
config.v1."""

from __future__ import annotations

import re
from datetime import date

import pytest

from schemas.budget_file import BudgetFileError, parse_budget_file
from schemas.budgets import BudgetError, OrgConfig
from schemas.config_records import org_record, parse_org
from schemas.holiday_calendar import check_calendar, holiday_dates


def test_a_country_and_its_region() -> None:
    assert date(2026, 3, 2) in holiday_dates("US-TX", (2026,))  # Texas Independence Day: Texas's, not California's
    assert date(2026, 3, 2) not in holiday_dates("US-CA", (2026,))
    assert holiday_dates("", (2026,)) == frozenset()


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("XX", "Country XX not available"),
        ("US-ZZ", "does not have subdivision ZZ"),
        ("usa", "a country code ('US') and optionally its region ('US-CA')"),
    ],
)
def test_a_calendar_the_package_does_not_know_is_refused_naming_the_field(code: str, reason: str) -> None:
    with pytest.raises(BudgetFileError, match=re.escape(reason)) as caught:
        parse_budget_file(f"orgs: {{acme: {{holidays: {code}}}}}")
    assert caught.value.field == "orgs.acme.holidays"
    with pytest.raises(BudgetError, match=re.escape(reason)):
        check_calendar(code)


def test_not_a_string_is_refused() -> None:
    with pytest.raises(BudgetFileError) as caught:
        parse_budget_file("orgs: {acme: {holidays: [US]}}")
    assert caught.value.field == "orgs.acme.holidays"
    with pytest.raises(BudgetError) as raised:
        OrgConfig("acme", holidays="de-by")
    assert raised.value.field == "holidays"


def test_the_calendar_travels_on_config_v1() -> None:
    org = parse_budget_file("orgs: {acme: {holidays: DE-BY, timezone: Europe/Berlin}}").orgs["acme"]
    assert org.holidays == "DE-BY"
    record = org_record(org)
    assert parse_org(record.key, record.value or b"") == org
    assert parse_org("org/globex", b"{}").holidays == ""  # older records: none
