from datetime import UTC, datetime

import pytest

from schemas.budgets import Channel
from schemas.channels import AlertConfigError, parse_channel, parse_routing
from schemas.errors import SpendstreamError

KEY = "a" * 32


def test_env_secrets_are_resolved_where_the_worker_applies_them() -> None:
    env = {"SPENDSTREAM_SECRET_ACME_SLACK_URL": "https://hooks.slack.example/T/B/x", "SPENDSTREAM_SECRET_ACME_PD": KEY}
    slack = parse_channel("acme", "eng", {"type": "slack", "url": "env:SPENDSTREAM_SECRET_ACME_SLACK_URL"}, env)
    assert slack.targets == ("https://hooks.slack.example/T/B/x",)
    assert "hooks" not in repr(slack) and slack.shown(slack.targets[0]) == "slack:eng"
    pd = parse_channel("acme", "oncall", {"type": "pagerduty", "routing_key": "env:SPENDSTREAM_SECRET_ACME_PD"}, env)
    assert pd.targets == (KEY,)
    with pytest.raises(AlertConfigError) as info:
        parse_channel("acme", "eng", {"type": "slack", "url": "env:SPENDSTREAM_SECRET_ACME_MISSING"}, env)
    assert info.value.field == "channel/acme/eng.url"
    assert "SPENDSTREAM_SECRET_ACME_MISSING is not set" in info.value.reason
    with pytest.raises(AlertConfigError) as info:
        parse_channel(
            "acme", "oncall", {"type": "pagerduty", "routing_key": "env:SPENDSTREAM_SECRET_ACME_SLACK_URL"}, env
        )
    assert info.value.field == "channel/acme/oncall.routing_key"


def test_channel_defaults_and_recipients() -> None:
    sms = parse_channel("acme", "oncall", {"type": "sms", "to": ["+15551230000", "+447700900123"]}, {})
    assert (sms.type, sms.targets, sms.rate_per_minute, sms.secret) == (
        Channel.SMS,
        ("+15551230000", "+447700900123"),
        10,
        False,
    )
    with pytest.raises(AlertConfigError) as info:
        parse_channel("acme", "x", {"type": "email", "to": ["a@b.example"], "cc": ["c@d.example"]}, {})
    assert info.value.field == "channel/acme/x.cc"
    assert isinstance(info.value, SpendstreamError) and str(info.value).startswith("channel/acme/x.cc: ")


def test_quiet_hours_wrap_midnight_in_their_zone() -> None:
    spec = parse_channel(
        "acme",
        "mail",
        {
            "type": "email",
            "to": ["a@b.example"],
            "quiet_hours": {"from": "22:00", "to": "07:00", "timezone": "Europe/Berlin"},
        },
        {},
    )
    quiet = spec.quiet_hours
    assert quiet is not None
    assert quiet.contains(datetime(2026, 1, 10, 21, 30, tzinfo=UTC))  # 22:30 in Berlin
    assert quiet.contains(datetime(2026, 1, 10, 5, 0, tzinfo=UTC))  # 06:00 in Berlin
    assert not quiet.contains(datetime(2026, 1, 10, 6, 0, tzinfo=UTC))  # 07:00 in Berlin
    assert not quiet.contains(datetime(2026, 1, 10, 12, 0, tzinfo=UTC))


def test_routing_by_kind_falls_back_to_default() -> None:
    routing = parse_routing("acme", {"default": ["mail"], "spike": ["eng"]})
    assert routing.channels_for("spike") == ("eng",)
    assert routing.channels_for("cap_denied") == ("mail",)
