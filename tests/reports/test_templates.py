"""Saved report templates: checked like every config record (errors name the field), kept on config.v1,
and a schedule read in the org's time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from schemas.config_records import ConfigRecord, ConfigState, template_record
from schemas.report_templates import TemplateError, parse_template


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("Bad Name", {"kind": "monthly"}, "name"),
        ("t", {"kind": "weekly"}, "kind"),
        ("t", {"kind": "monthly", "formats": ["docx"]}, "formats"),
        ("t", {"kind": "monthly", "recipients": ["cfo@acme.example", "nobody"]}, "recipients[1]"),
        ("t", {"kind": "monthly", "schedule": "every monday"}, "schedule"),
        ("t", {"kind": "monthly", "schedule": "0 25 * * *"}, "schedule"),
        ("t", {"kind": "custom", "days": 0}, "days"),
        ("t", {"kind": "monthly", "filters": {"group": "user"}}, "filters"),
        ("t", {"kind": "custom", "filters": {"colour": "red"}}, "filters"),
        ("t", {"kind": "monthly", "when": "soon"}, "when"),
    ],
)
def test_a_bad_template_names_the_field(name: str, body: dict[str, object], field: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template("acme", name, body)
    assert info.value.field == field


def test_a_template_round_trips_through_the_config_topic_and_schedules_in_the_orgs_zone() -> None:
    body = {
        "kind": "custom",
        "formats": ["pdf", "csv"],
        "recipients": ["cfo@acme.example"],
        "schedule": "0 8 1 * *",
        "days": 7,
        "filters": {"group": "department"},
    }
    template = parse_template("acme", "finance-weekly", body)
    state = ConfigState()
    state.apply(template_record(template))
    assert state.reports[("acme", "finance-weekly")] == template
    berlin = ZoneInfo("Europe/Berlin")
    assert template.next_run(datetime(2026, 11, 30, 12, tzinfo=berlin)) == datetime(2026, 12, 1, 8, tzinfo=berlin)
    state.apply(ConfigRecord("report/acme/finance-weekly", None))
    assert not state.reports
    assert (
        parse_template("acme", "on-demand", {"kind": "monthly"}).next_run(datetime(2026, 1, 1, tzinfo=berlin)) is None
    )


def test_the_due_run_is_the_latest_missed_time_after_the_save_and_the_last_run() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    saved = datetime(2026, 9, 15, tzinfo=berlin)
    template = parse_template("acme", "t", {"kind": "monthly", "schedule": "0 8 1 * *", "saved_at": saved.isoformat()})
    now = datetime(2026, 11, 30, 12, tzinfo=berlin)
    # October's and November's runs were both missed: one run, of November's
    assert template.last_due(now) == datetime(2026, 11, 1, 8, tzinfo=berlin)
    assert template.last_due(now, done=datetime(2026, 11, 1, 8, tzinfo=berlin)) is None
    assert template.last_due(datetime(2026, 11, 1, 8, tzinfo=berlin)) == datetime(2026, 11, 1, 8, tzinfo=berlin)
    assert template.last_due(datetime(2026, 9, 30, tzinfo=berlin)) is None  # nothing since it was saved
    with pytest.raises(TemplateError) as info:
        parse_template("acme", "t", {"kind": "monthly", "saved_at": "2026-09-15T00:00:00"})
    assert info.value.field == "saved_at"
