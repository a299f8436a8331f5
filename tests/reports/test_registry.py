"""The report kinds are one list (schemas.report_kinds): every kind is built, offered by the CLI, described
in the API and offered on the Generate Report page, and nothing else is."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from admin.reports_cli import reports_parser
from console.openapi import openapi_document
from reports.build import BUILDERS
from schemas.report_kinds import KINDS, REPORT_KINDS, Coverage, forms
from schemas.report_templates import parse_template

ROOT = Path(__file__).resolve().parents[2]


def test_every_month_kind_has_a_builder_and_only_those() -> None:
    assert set(BUILDERS) == {k.name for k in REPORT_KINDS if k.coverage is Coverage.MONTH}
    assert [k.name for k in REPORT_KINDS if k.coverage is Coverage.RANGE] == ["custom"]


def test_the_cli_offers_every_kind() -> None:
    parser = argparse.ArgumentParser()
    reports_parser(parser.add_subparsers())
    for kind in KINDS:
        assert parser.parse_args(["reports", "generate", "--kind", kind]).kind == kind


def test_the_api_describes_every_kind() -> None:
    schema = openapi_document()["paths"]["/api/v1/reports"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert schema["properties"]["kind"]["enum"] == list(KINDS)


def test_a_template_may_name_every_kind_and_no_other() -> None:
    for kind in KINDS:
        assert parse_template("acme", "t", {"kind": kind}).kind == kind


def test_every_kind_is_offered_by_one_form_and_the_page_names_no_kind_itself() -> None:
    offered = [k.name for _, kinds in forms() for k in kinds]
    assert sorted(offered) == sorted(KINDS)
    page = (ROOT / "console" / "templates" / "reports.html").read_text()
    spelled = "|".join(map(re.escape, KINDS))
    assert not re.search(f'value="({spelled})"', page)
