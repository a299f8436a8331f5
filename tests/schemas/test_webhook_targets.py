"""Where an org's alerts may go, and whose secrets it may name: the pure rules."""

from __future__ import annotations

import pytest

from schemas.channels import AlertConfigError, parse_channel
from schemas.settings import ConsoleSettings
from schemas.webhook_targets import (
    InternalTargetError,
    allowed_hosts,
    check_address,
    check_secret_name,
    check_webhook_url,
    org_secret_prefix,
    prefix_shared_by,
)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123/?query=SELECT%201",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:6379/",
        "http://LOCALHOST./",
        "http://[::1]:9092/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://10.0.0.8/",
        "http://172.16.3.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://017700000001/",
        "http://redis/",
        "http://printer.local/",
        "http://vault.internal/",
        "http://db.svc.cluster.localhost/",
        "ftp://hooks.slack.com/x",
        "https://user:secret@hooks.slack.com/x",
        "https://hooks.slack.com:99999/x",
        "not a url",
    ],
)
def test_internal_and_odd_targets_are_refused(url: str) -> None:
    with pytest.raises(InternalTargetError):
        check_webhook_url(url, frozenset())


@pytest.mark.parametrize(
    "url",
    ["https://hooks.slack.com/services/T/B/x", "https://acme.webhook.office.com/webhookb2/x", "http://93.184.216.34/"],
)
def test_public_targets_pass(url: str) -> None:
    check_webhook_url(url, frozenset())


def test_the_operators_allow_list_admits_an_internal_host() -> None:
    allow = allowed_hosts(" 127.0.0.1, Relay.Corp.Internal ,[::1]")
    assert allow == frozenset({"127.0.0.1", "relay.corp.internal", "::1"})
    for url in ("http://127.0.0.1:9000/slack", "https://relay.corp.internal/x", "http://[::1]:80/"):
        check_webhook_url(url, allow)
    with pytest.raises(InternalTargetError):
        check_webhook_url("http://127.0.0.2/", allow)


def test_addresses_are_checked_as_resolved() -> None:
    check_address("93.184.216.34")
    check_address("2606:2800:220:1:248:1893:25c8:1946")
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "fe80::1%eth0", "10.1.1.1", "fc00::2"):
        with pytest.raises(InternalTargetError):
            check_address(address)


def test_secrets_are_namespaced_per_org() -> None:
    assert org_secret_prefix("acme") == "SPENDSTREAM_SECRET_ACME_"
    assert org_secret_prefix("acme-eu.2") == "SPENDSTREAM_SECRET_ACME_EU_2_"
    check_secret_name("acme", "SPENDSTREAM_SECRET_ACME_SLACK")
    for name in (
        "ACME_SLACK",
        "SPENDSTREAM_SECRET_GLOBEX_SLACK",
        "SPENDSTREAM_SECRET_ACME_",
        "SPENDSTREAM_SECRET_ACMEX",
    ):
        with pytest.raises(InternalTargetError, match="SPENDSTREAM_SECRET_ACME_<NAME>"):
            check_secret_name("acme", name)
    assert prefix_shared_by("acme-eu", ["acme_eu", "globex"]) == "acme_eu"
    assert prefix_shared_by("acme", ["acme", "globex"]) is None
    # the rule holds wherever a channel is parsed: the budgets file, the console, the worker
    with pytest.raises(AlertConfigError) as info:
        parse_channel("globex", "stolen", {"type": "slack", "url": "env:SPENDSTREAM_SECRET_ACME_SLACK"}, None)
    assert info.value.field == "channel/globex/stolen.url"


def test_the_session_cookie_is_secure_unless_served_on_loopback() -> None:
    assert not ConsoleSettings().cookies_secure()  # 127.0.0.1: plain HTTP on one's own machine
    assert ConsoleSettings(host="0.0.0.0").cookies_secure()
    assert not ConsoleSettings(host="0.0.0.0", secure_cookies=False).cookies_secure()
