"""Declared allocation tags: what an event's metadata is charged to, and how a declaration is checked."""

from __future__ import annotations

import pytest

from schemas.allocation_tags import (
    UNTAGGED,
    TagError,
    TagRule,
    cap_tags,
    parse_tag_rules,
    split_tag_scope,
    tag_values,
)
from schemas.budget_file import BudgetFileError, parse_budget_file
from schemas.config_records import ConfigState, org_record

RULES = parse_tag_rules(["project", {"env": {"values": ["prod", "staging"], "missing": "prod"}}])


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"project": "apollo", "env": "staging"}, {"project": "apollo", "env": "staging"}),
        ({}, {"project": UNTAGGED, "env": "prod"}),  # missing: the declared fallback
        ({"project": "apollo\n"}, {"project": UNTAGGED, "env": "prod"}),  # a trailing newline is not an id
        ({"project": "a b", "env": "dev"}, {"project": UNTAGGED, "env": "prod"}),  # malformed; not listed
        ({"Project": "apollo", "other": "x"}, {"project": UNTAGGED, "env": "prod"}),  # keys match exactly
        ({"project": "x" * 129}, {"project": UNTAGGED, "env": "prod"}),  # over the id's 128 characters
    ],
)
def test_each_declared_tag_takes_a_value_or_its_missing_value(
    metadata: dict[str, str], expected: dict[str, str]
) -> None:
    assert tag_values(RULES, metadata) == expected


def test_the_budgets_file_declares_tags_and_they_survive_the_config_topic() -> None:
    text = """
orgs:
  acme:
    tags: [project, customer, {env: {values: [prod, staging], missing: prod}}]
    trust_request_tags: true
"""
    org = parse_budget_file(text).orgs["acme"]
    assert [rule.key for rule in org.tags] == ["project", "customer", "env"]
    assert org.trust_request_tags is True
    state = ConfigState()
    state.apply(org_record(org))
    assert state.orgs["acme"] == org
    assert parse_budget_file("orgs: {acme: {}}").orgs["acme"].tags == ()  # none declared by default


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ("[Project]", "orgs.acme.tags", "a-z 0-9 _"),
        ("[a, a]", "orgs.acme.tags", "declared twice"),
        ("[a, b, c, d, e, f, g, h, i]", "orgs.acme.tags", "at most 8"),
        ("[{env: {values: ['x y']}}]", "orgs.acme.tags.env.values", "id rules"),
        ("[{env: {values: [prod, prod]}}]", "orgs.acme.tags.env.values", "twice"),
        ("[{env: {missing: 'no way'}}]", "orgs.acme.tags.env.missing", "id rules"),
        ("[{env: {default: prod}}]", "orgs.acme.tags[0].env", "only values and missing"),
        ("project", "orgs.acme.tags", "a list"),
    ],
)
def test_a_bad_declaration_names_the_field(spec: str, field: str, reason: str) -> None:
    with pytest.raises(BudgetFileError) as caught:
        parse_budget_file(f"orgs:\n  acme:\n    tags: {spec}\n")
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_trust_request_tags_must_be_a_boolean() -> None:
    with pytest.raises(BudgetFileError) as caught:
        parse_budget_file("orgs:\n  acme:\n    trust_request_tags: sometimes\n")
    assert caught.value.field == "orgs.acme.trust_request_tags"


def test_a_rule_round_trips_through_its_body() -> None:
    for rule in (TagRule("project"), TagRule("env", ("prod",), "prod"), TagRule("customer", (), "internal")):
        assert parse_tag_rules([rule.body()]) == (rule,)
    with pytest.raises(TagError):
        TagRule("1project")


BUDGETED = """
orgs:
  acme:
    tags: [project, {env: {values: [prod, staging], missing: prod}}]
budgets:
  - {org: acme, scope: tag, id: "%s", period: monthly, limit: "500", mode: hard}
"""


def test_a_budget_on_a_tag_value_names_a_declared_tag_and_a_listed_value() -> None:
    budget = parse_budget_file(BUDGETED % "project=apollo").budgets[0]
    assert (budget.key, budget.limit_nanos) == ("tag/project=apollo/monthly", 500 * 10**9)
    assert parse_budget_file(BUDGETED % "env=prod").budgets[0].scope_id == "env=prod"
    for scope_id, reason in (
        ("customer=c1", "'customer' is not one of acme's allocation tags"),
        ("env=dev", "'dev' is not one of the values tag 'env' lists"),
        ("project", "is not <tag>=<value>"),
        ("project=a b", "is not <tag>=<value>"),
        ("Project=apollo", "is not <tag>=<value>"),
    ):
        with pytest.raises(BudgetFileError, match=reason) as caught:
            parse_budget_file(BUDGETED % scope_id)
        assert caught.value.field == "budgets[0].id"


def test_caps_count_every_declared_value_but_untagged() -> None:
    assert cap_tags(tag_values(RULES, {"project": "apollo"})) == (("project", "apollo"), ("env", "prod"))
    assert cap_tags(tag_values(RULES, {})) == (("env", "prod"),)  # a tag's own missing value is a value
    assert cap_tags(None) == ()
    assert split_tag_scope("project=apollo") == ("project", "apollo")
    assert split_tag_scope("project=apollo=x") is None and split_tag_scope("=apollo") is None
