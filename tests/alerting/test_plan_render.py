import msgspec

from alerting.plan import TokenBucket, delivery_digest, plan
from alerting.render import (
    email_message,
    pagerduty_resolve,
    pagerduty_trigger,
    slack_payload,
    teams_payload,
    view_of,
)
from alerting.senders import classify, retry_after_seconds
from schemas.alerts import Alert, BudgetStage, CapDenied, ProjectedExceed, Resolved, Spike
from schemas.budgets import Budget, BudgetMode, Period, ScopeKind
from schemas.channels import parse_channel, parse_routing

ENV = {"SPENDSTREAM_SECRET_ACME_U": "https://hooks.example/x"}
CHANNELS = {
    ("acme", "eng"): parse_channel("acme", "eng", {"type": "slack", "url": "env:SPENDSTREAM_SECRET_ACME_U"}, ENV),
    ("acme", "mail"): parse_channel("acme", "mail", {"type": "email", "to": ["a@x.example", "b@x.example"]}, ENV),
    ("acme", "pd"): parse_channel("acme", "pd", {"type": "pagerduty", "routing_key": "k" * 32}, ENV),
}
BUDGET = Budget(
    "acme",
    ScopeKind.DEPARTMENT,
    "eng",
    Period.MONTHLY,
    100 * 10**9,
    BudgetMode.HARD,
    (50, 80, 100),
    alerts={"80": ("eng", "mail"), "100": ("pd", "eng"), "cap_denied": ("pd",)},
)
BUDGETS = {"budget/acme/department/eng/monthly": BUDGET}
ROUTING = {"acme": parse_routing("acme", {"default": ["mail"], "spike": ["eng", "ghost"]})}


BASE: dict[str, object] = {
    "org_id": "acme",
    "scope": "department/eng",
    "period": "monthly",
    "period_key": "2026-11",
    "detected_at": "2026-11-27T10:00:00+00:00",
}


def alert(**kw: object) -> BudgetStage:
    money = {"stage": 80, "limit_nanos": 100 * 10**9, "spent_nanos": 81_234_567_891}
    return msgspec.convert(BASE | money | kw, BudgetStage)


def targets(a: Alert) -> list[str]:
    return [f"{d.channel.name}:{d.label}" for d in plan(a, BUDGETS, CHANNELS, ROUTING).deliveries]


def test_escalation_by_stage_and_fallbacks() -> None:
    assert targets(alert()) == ["eng:slack:eng", "mail:a@x.example", "mail:b@x.example"]
    assert targets(alert(stage=100)) == ["pd:pagerduty:pd", "eng:slack:eng"]
    assert targets(alert(stage=50)) == ["mail:a@x.example", "mail:b@x.example"]  # no route for 50: org default
    assert targets(msgspec.convert(BASE, CapDenied)) == ["pd:pagerduty:pd"]
    spiked = Spike(
        org_id="acme", scope="user/u1", observed_nanos=2, expected_nanos=1, detected_at="2026-11-27T10:00:00Z"
    )
    spike = plan(spiked, BUDGETS, CHANNELS, ROUTING)
    assert [d.channel.name for d in spike.deliveries] == ["eng"] and spike.missing == ("ghost",)
    resolved = Resolved(org_id="acme", scope="department/eng", resolves="k", channels=["pd"], detected_at="x")
    assert targets(resolved) == ["pd:pagerduty:pd"]


def test_rate_limit_and_delivery_digests() -> None:
    bucket = TokenBucket(2, now=0.0)
    assert [bucket.take(0.0), bucket.take(0.0), bucket.take(0.0)] == [True, True, False]
    assert bucket.take(30.0) and not bucket.take(30.0)  # one token back after 30 s at 2/min
    eng, mail = CHANNELS[("acme", "eng")], CHANNELS[("acme", "mail")]
    digests = {
        delivery_digest("k|80", eng, "u"),
        delivery_digest("k|100", eng, "u"),
        delivery_digest("k|80", mail, "u"),
        delivery_digest("k|80", eng, "v"),
    }
    assert len(digests) == 4 and delivery_digest("k|80", eng, "u") in digests


def test_http_outcomes() -> None:
    assert classify(200, None, "ok") is None and classify(202, None, "") is None
    too_many = classify(429, 3.0, "slow down")
    assert too_many is not None and too_many.retryable and too_many.retry_after == 3.0
    server = classify(503, None, "")
    assert server is not None and server.retryable
    gone = classify(404, None, "no_service")
    assert gone is not None and not gone.retryable and "no_service" in gone.reason
    assert retry_after_seconds("12", 0.0) == 12.0
    assert retry_after_seconds("Thu, 01 Jan 1970 00:01:00 GMT", 30.0) == 30.0
    assert retry_after_seconds("soon", 0.0) is None


def test_a_spike_says_the_bucket_against_expected_in_dollars() -> None:
    spike = Spike(
        org_id="acme",
        scope="user/ada",
        period="60s",
        period_key="2026-11-27T10:00:00+00:00",
        observed_nanos=9_000_000_000,
        expected_nanos=750_000_000,
        detected_at="2026-11-27T10:00:00+00:00",
    )
    view = view_of(spike, "https://console.example")
    assert view.title == "acme: usage spike on user ada"
    assert dict(view.facts)["In the bucket"] == "$9.00 against $0.75 expected (12.0x)"
    assert view.link == "https://console.example/billing/costs?from=2026-11-27&to=2026-11-27&group=model&user=ada"


def test_messages_say_spent_limit_percent_drivers_and_link() -> None:
    a = alert(
        drivers=[{"user_id": "u1", "model": "gpt-4o", "feature": "chat", "cost_nanos": 50 * 10**9, "share": 0.6155}]
    )
    view = view_of(a, "https://console.example/")
    assert view.title == "acme: department eng reached 80% of its monthly budget"
    facts = dict(view.facts)
    assert facts["Spent"] == "$81.23 of $100.00 (81.2%)"
    assert view.drivers == ("u1 / gpt-4o / chat $50.00 (62%)",)
    assert view.link == "https://console.example/billing/costs?from=2026-11-01&to=2026-11-30&group=user&department=eng"
    slack = slack_payload(view)
    assert slack["text"] == view.title and slack["blocks"][0]["type"] == "header"
    card = teams_payload(view)["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    trigger = pagerduty_trigger(view, a, "k" * 32)
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == a.dedup_key
    assert trigger["payload"]["severity"] == "warning" and trigger["payload"]["source"] == "spendstream"
    assert pagerduty_resolve(a.dedup_key, "k" * 32) == {
        "routing_key": "k" * 32,
        "event_action": "resolve",
        "dedup_key": a.dedup_key,
    }
    mail = email_message(view, a, "spendstream@x.example", "a@x.example")
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]
    assert mail["Message-ID"] == email_message(view, a, "s@x.example", "a@x.example")["Message-ID"]


def test_a_projection_says_the_interval_the_chance_and_the_runout() -> None:
    money = {"limit_nanos": 100 * 10**9, "spent_nanos": 60 * 10**9, "probability": 0.93, "runout_date": "2026-11-26"}
    projected = {
        "projected_p10_nanos": 90 * 10**9,
        "projected_p50_nanos": 120 * 10**9,
        "projected_p90_nanos": 150 * 10**9,
    }
    view = view_of(msgspec.convert(BASE | money | projected, ProjectedExceed), "https://grafana.example")
    assert view.title == "acme: department eng is projected to exceed its budget"
    facts = dict(view.facts)
    assert facts["Spent"] == "$60.00 of $100.00 (60.0%)"
    assert facts["Projected period end"] == "$120.00 (P10 $90.00 to P90 $150.00)"
    assert (facts["Chance of exceeding"], facts["Budget runs out"]) == ("93%", "2026-11-26")


def test_a_stage_of_a_period_that_had_ended_is_of_a_closed_period() -> None:
    from alerting.plan import of_closed_period

    def stage(period: str, key: str, applied: str) -> BudgetStage:
        return BudgetStage(org_id="acme", scope="department/eng", period=period, period_key=key, stage=50,
                           detected_at=applied)  # fmt: skip

    assert of_closed_period(stage("monthly", "2026-10", "2026-12-04T10:00:00+00:00"), "UTC")
    assert not of_closed_period(stage("monthly", "2026-12", "2026-12-04T10:00:00+00:00"), "UTC")
    # cut in the org's time zone: 23:30 UTC on Nov 30 is already December in Berlin
    assert of_closed_period(stage("monthly", "2026-11", "2026-11-30T23:30:00+00:00"), "Europe/Berlin")
    assert not of_closed_period(stage("monthly", "2026-11", "2026-11-30T23:30:00+00:00"), "UTC")
    assert of_closed_period(stage("weekly", "2026-W09", "2026-03-02T08:00:00+00:00"), "UTC")  # W10 began
    assert of_closed_period(stage("daily", "2026-12-03", "2026-12-04T00:00:01+00:00"), "UTC")
    assert not of_closed_period(stage("daily", "2026-12-05", "2026-12-04T23:30:00+00:00"), "UTC")  # ahead


def test_a_spike_over_next_to_nothing_is_new_spend_not_a_ratio_in_the_thousands() -> None:
    from schemas.alerts import spike_comparison

    assert spike_comparison(30_600_000_000, 933_000) == "new spend: $30.60 where under $0.01 was expected"
    assert spike_comparison(9_000_000_000, 750_000_000) == "$9.00 against $0.75 expected (12.0x)"
    # seen in the demo: "$30.65 against $0.04 expected (741.7x)"
    assert spike_comparison(30_650_000_000, 41_000_000) == "new spend: $30.65 where $0.04 was expected"
    spike = Spike(org_id="acme", scope="user/eng-user007", detected_at="2026-12-04T10:00:00+00:00",
                  observed_nanos=30_600_000_000, expected_nanos=0)  # fmt: skip
    view = view_of(spike, "https://console.acme.example")
    assert dict(view.facts)["In the bucket"] == "new spend: $30.60 where under $0.01 was expected"
    assert "x)" not in slack_payload(view)["text"] + str(slack_payload(view)["blocks"])
