"""Filters by API key and declared tag (pure): which are accepted, what they read, and how they drill."""

from __future__ import annotations

from datetime import date

import pytest

from reports.filters import FilterError, parse_filter

TODAY = date(2026, 11, 20)
TAGS = ("project", "customer")


def test_a_view_groups_by_a_declared_tag_or_the_api_key_and_narrows_to_one_value() -> None:
    f = parse_filter({"group": "tag:project", "api_key": "eng-key-0"}, "Europe/Berlin", TODAY, TAGS)
    assert (f.group, f.by_label, f.label, f.label_value) == ("tag:project", True, "api_key", "eng-key-0")
    sql, params = f.spend("db", "acme")
    assert "usage_events" in sql and "tags[{group_tag:String}]" in sql  # two labels: read from the raw events
    assert params["group_tag"] == "project" and params["label_value"] == "eng-key-0"
    same = parse_filter({"group": "tag:project", "tag:project": "apollo"}, "UTC", TODAY, TAGS)
    assert "usage_labels_hourly" in same.spend("db", "acme")[0]
    drilled = parse_filter({"group": "api_key"}, "UTC", TODAY, TAGS).drill("eng-key-1")
    assert (drilled.group, drilled.label, drilled.label_value) == ("model", "api_key", "eng-key-1")
    assert "api_key=eng-key-1" in drilled.params() and "group=model" in drilled.params()
    plain = parse_filter({"group": "model", "tag:customer": "cust-001"}, "UTC", TODAY, TAGS)
    sql, params = plain.spend("db", "acme")
    assert "usage_labels_hourly" in sql and params["label"] == "tag:customer" and "GROUP BY key" in sql


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"group": "tag:region"}, "group", "not a declared tag of the org (declared: project, customer)"),
        ({"tag:region": "eu"}, "tag:region", "not a declared tag"),
        ({"tag:project": "apollo", "api_key": "k1"}, "api_key", "one API key or one tag value at a time"),
        ({"tag:project": "apollo\n"}, "tag:project", "not a valid value"),
        ({"group": "tag:"}, "group", "not a declared tag"),
        ({"group": "labels"}, "group", "tag:<key> of a declared tag"),
    ],
)
def test_a_tag_the_org_did_not_declare_is_refused_by_name(params: dict[str, str], field: str, reason: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(params, "UTC", TODAY, TAGS)
    assert (caught.value.field, reason in caught.value.reason) == (field, True), caught.value


def test_without_declared_tags_only_the_api_key_is_a_label() -> None:
    assert parse_filter({"group": "api_key"}, "UTC", TODAY).column == "api_key"
    with pytest.raises(FilterError, match="declared: none"):
        parse_filter({"group": "tag:project"}, "UTC", TODAY)
