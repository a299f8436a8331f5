"""The Generate Report page's template and chargeback forms read as the API's fields, and shown back."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from starlette.datastructures import FormData

from console.report_settings import (
    chargeback_form_values,
    chargeback_from_form,
    chargeback_view,
    parse_chargeback_input,
    template_form_values,
    template_from_form,
    template_from_input,
    template_view,
)
from schemas.cost_allocation import ChargebackError

NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


def test_a_template_form_reads_as_the_api_body_and_shows_back() -> None:
    form = FormData(
        [("kind", "custom"), ("recipients", "cfo@acme.example,  ap@acme.example"), ("schedule", "0 8 * * 1"),
         ("timezone", ""), ("days", "7"), ("group", "feature"), ("granularity", "week"), ("model", "gpt-4o"),
         ("user", ""), ("paused", "on"), ("tag:project", "apollo"), ("api_key", "")]
    )  # fmt: skip
    body = template_from_form(form, ["csv", "pdf"])
    assert body["filters"] == {"group": "feature", "granularity": "week", "model": "gpt-4o", "tag:project": "apollo"}
    assert body["recipients"] == ["cfo@acme.example", "ap@acme.example"] and body["paused"] is True
    template = template_from_input("acme", "weekly", body, NOW, None)
    assert (template.days, template.timezone, template.saved_at) == (7, "", NOW)
    shown = template_form_values(template_view(template, "Europe/Berlin"))
    assert shown["recipients"] == "cfo@acme.example, ap@acme.example" and shown["model"] == "gpt-4o"
    assert template_from_form(FormData(list(shown.items())), ["csv", "pdf"])["filters"] == body["filters"]


def test_a_month_kind_takes_none_of_the_custom_reports_fields() -> None:
    form = FormData([("kind", "monthly"), ("group", "model"), ("granularity", "day"), ("days", "30")])
    assert template_from_form(form, ["pdf"])["filters"] == {}  # the selects always send a value


def test_a_kept_run_request_survives_an_edit() -> None:
    asked = replace(template_from_input("acme", "t", {"kind": "monthly"}, NOW, None), run_requested_at=NOW)
    assert template_from_input("acme", "t", {"kind": "monthly"}, NOW, asked).run_requested_at == NOW


def test_the_chargeback_form_round_trips_and_bad_lines_name_the_field() -> None:
    form = FormData(
        [("cost_centres", "eng = CC-1010\n\nsales=CC-2020"), ("rule", "shares"), ("shares", "eng = 60\nsales = 40"),
         ("expense", "6420"), ("accrual", "2100"), ("default_cost_centre", ""), ("unallocated_cost_centre", "CC-9000")]
    )  # fmt: skip
    rule = parse_chargeback_input(chargeback_from_form(form))
    assert rule.cost_centres == (("eng", "CC-1010"), ("sales", "CC-2020")) and rule.shares == (
        ("eng", 60),
        ("sales", 40),
    )
    again = {k: v for k, v in chargeback_form_values(chargeback_view(rule)).items()}
    assert parse_chargeback_input(chargeback_from_form(FormData(list(again.items())))) == rule
    assert rule.by == "department" and again["by"] == "department"
    by_project = parse_chargeback_input(chargeback_from_form(FormData([*again.items(), ("by", "project")])))
    assert by_project.by == "project" and chargeback_form_values(chargeback_view(by_project))["by"] == "project"
    with pytest.raises(ChargebackError) as bad:
        chargeback_from_form(FormData([("cost_centres", "eng CC-1010")]))
    assert bad.value.field == "cost_centres" and "line 1" in bad.value.reason
    with pytest.raises(ChargebackError) as short:
        rest = [(k, v) for k, v in again.items() if k not in ("rule", "shares")]
        parse_chargeback_input(chargeback_from_form(FormData([*rest, ("rule", "shares"), ("shares", "eng = 50")])))
    assert short.value.field == "chargeback.unallocated"
