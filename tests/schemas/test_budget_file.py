import pytest

from schemas import BudgetMode, Channel, Period, ScopeKind
from schemas.budget_file import BudgetFileError, parse_budget_file


def test_a_full_budget_file() -> None:
    parsed = parse_budget_file("""
orgs:
  acme: {timezone: America/New_York, on_redis_unavailable: open}
budgets:
  - {org: acme, period: monthly, limit: 5000, mode: hard}
  - org: acme
    scope: department
    id: eng
    period: weekly
    limit: "1,250.50"
    stages: [25, 75, 100, 120]
    recipients: {slack: ["#eng-costs"], pagerduty: [oncall]}
  - {org: globex, scope: model, id: "bedrock/claude-v2:1", limit: 0.000000001}
""")
    assert parsed.orgs["acme"].timezone == "America/New_York"
    assert parsed.orgs["acme"].on_redis_unavailable == "open"
    assert parsed.orgs["globex"].timezone == "UTC"
    org, dept, model = parsed.budgets
    assert (org.scope, org.scope_id, org.limit_nanos, org.mode) == (
        ScopeKind.ORG,
        "acme",
        5000 * 10**9,
        BudgetMode.HARD,
    )
    assert (dept.period, dept.limit_nanos, dept.stages, dept.timezone) == (
        Period.WEEKLY,
        1_250_500_000_000,
        (25, 75, 100, 120),
        "America/New_York",
    )
    assert dept.recipients == {Channel.SLACK: ("#eng-costs",), Channel.PAGERDUTY: ("oncall",)}
    assert (model.limit_nanos, model.mode) == (1, BudgetMode.SOFT)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("budgets: [{scope: user, id: ada, limit: 1}]", "budgets[0].org"),
        ("budgets: [{org: a, scope: team, id: x, limit: 1}]", "budgets[0].scope"),
        ("budgets: [{org: a, period: yearly, limit: 1}]", "budgets[0].period"),
        ("budgets: [{org: a, mode: strict, limit: 1}]", "budgets[0].mode"),
        ("budgets: [{org: a, scope: user, limit: 1}]", "budgets[0].id"),
        ("budgets: [{org: a, limit: abc}]", "budgets[0].limit"),
        ("budgets: [{org: a, limit: 0.0000000001}]", "budgets[0].limit"),
        ("budgets: [{org: a, limit: 10000000}]", "budgets[0].limit"),
        ("budgets: [{org: a}]", "budgets[0].limit"),
        ("budgets: [{org: a, limit: 1, colour: red}]", "budgets[0].colour"),
        ("budgets: [{org: a, limit: 1, recipients: {fax: [x]}}]", "budgets[0].recipients.fax"),
        ("budgets: [{org: a, limit: 1, stages: [80, 50]}]", "budgets[0]"),
        ("budgets: [{org: 'a:b', limit: 1}]", "budgets[0]"),
        ("budgets: [{org: a, limit: 1}, {org: a, limit: 2}]", "budgets[1]"),
        ("orgs: {a: {timezone: Nowhere/City}}", "orgs.a"),
        ("orgs: {a: {on_redis_unavailable: maybe}}", "orgs.a.on_redis_unavailable"),
        ("teams: []", "$.teams"),
        ("- 1", "$"),
    ],
)
def test_errors_name_the_entry(text: str, where: str) -> None:
    with pytest.raises(BudgetFileError) as info:
        parse_budget_file(text)
    assert info.value.where == where
