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
    alerts: {75: [eng-slack], 120: [oncall-pd, eng-slack], cap_denied: [eng-slack]}
  - {org: globex, scope: model, id: "bedrock/claude-v2:1", limit: 0.000000001}
channels:
  acme:
    eng-slack: {type: slack, url: "env:SPENDSTREAM_SECRET_ACME_SLACK"}
    oncall-pd:
      {type: pagerduty, routing_key: "env:SPENDSTREAM_SECRET_ACME_PD", quiet_hours: {from: "22:00", to: "06:30"}}
routing:
  acme: {default: [eng-slack]}
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
    assert dept.alerts == {"75": ("eng-slack",), "120": ("oncall-pd", "eng-slack"), "cap_denied": ("eng-slack",)}
    slack, _ = parsed.channels[("acme", "eng-slack")]
    assert (slack.type, slack.targets, slack.secret) == (Channel.SLACK, ("env:SPENDSTREAM_SECRET_ACME_SLACK",), True)
    assert "env:" not in repr(slack) and "***" in repr(slack)
    pd, _ = parsed.channels[("acme", "oncall-pd")]
    assert pd.quiet_hours is not None and str(pd.quiet_hours.end) == "06:30:00"
    assert parsed.routing["acme"][0].channels_for("spike") == ("eng-slack",)
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
        ("budgets: [{org: a, limit: 1, recipients: {slack: [x]}}]", "budgets[0].recipients"),
        ("budgets: [{org: a, limit: 1, alerts: {75: [x]}}]", "budgets[0].alerts.75"),
        ("budgets: [{org: a, limit: 1, alerts: {spike: [x]}}]", "budgets[0].alerts.spike"),
        ("budgets: [{org: a, limit: 1, alerts: {80: [nope]}}]", "budgets[0].alerts.80"),
        ("channels: {a: {s: {type: fax}}}", "channels.a.s.type"),
        ("channels: {a: {s: {type: email, to: [not-an-address]}}}", "channels.a.s.to[0]"),
        ("channels: {a: {s: {type: sms, to: ['555-1234']}}}", "channels.a.s.to[0]"),
        ("channels: {a: {s: {type: slack, url: 'ftp://x'}}}", "channels.a.s.url"),
        ("channels: {a: {s: {type: pagerduty, routing_key: short}}}", "channels.a.s.routing_key"),
        (
            "channels: {a: {s: {type: slack, url: 'env:SPENDSTREAM_SECRET_A_X', rate_per_minute: 0}}}",
            "channels.a.s.rate_per_minute",
        ),
        (
            "channels: {a: {s: {type: slack, url: 'env:SPENDSTREAM_SECRET_A_X', "
            "quiet_hours: {from: '25:00', to: '07:00'}}}}",
            "channels.a.s.quiet_hours.from",
        ),
        ("channels: {a: {S: {type: slack, url: 'env:SPENDSTREAM_SECRET_A_X'}}}", "channels.a.S"),
        ("routing: {a: {default: [ghost]}}", "routing.a.default"),
        ("routing: {a: {pager: []}}", "routing.a.pager"),
        ("budgets: [{org: a, limit: 1, stages: [80, 50]}]", "budgets[0].stages"),
        ("budgets: [{org: 'a:b', limit: 1}]", "budgets[0].org"),
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
    assert info.value.field == where
