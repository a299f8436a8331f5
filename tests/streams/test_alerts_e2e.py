"""Budget alerts from the stream to real local receivers: once per recipient, through failures and restarts."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from enforcement.client import CapClient
from enforcement.subject import Subject
from schemas.alerts import BudgetStage, decode_alert
from schemas.events import UsageEvent
from tests.deployment import Deployment
from tests.receivers import TWILIO_SID, TWILIO_TOKEN, Receivers, start_http, start_smtp

PD_KEY = "R" * 32


@pytest.fixture
def receivers() -> Iterator[tuple[Receivers, object]]:
    http = start_http()
    controller, mailbox = start_smtp()
    yield http, (controller, mailbox)
    http.server.shutdown()
    controller.stop()


def alert_env(dep: Deployment, http: Receivers, smtp_port: int) -> None:
    dep.env.update(
        {
            "SPENDSTREAM_SECRET_ACME_T_SLACK_URL": f"{http.url}/slack/eng",
            "SPENDSTREAM_SECRET_ACME_T_PD_KEY": PD_KEY,
            "SPENDSTREAM_ALERTS__SMTP_HOST": "127.0.0.1",
            "SPENDSTREAM_ALERTS__SMTP_PORT": str(smtp_port),
            "SPENDSTREAM_ALERTS__SMTP_SECURITY": "none",
            "SPENDSTREAM_ALERTS__SMTP_FROM": "spendstream@acme.example",
            "SPENDSTREAM_ALERTS__TWILIO_ACCOUNT_SID": TWILIO_SID,
            "SPENDSTREAM_ALERTS__TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "SPENDSTREAM_ALERTS__TWILIO_FROM": "+15550001111",
            "SPENDSTREAM_ALERTS__TWILIO_BASE_URL": http.url,
            "SPENDSTREAM_ALERTS__PAGERDUTY_EVENTS_URL": f"{http.url}/v2/enqueue",
            "SPENDSTREAM_ALERTS__CONSOLE_URL": "https://console.acme.example",
            "SPENDSTREAM_ALERTS__BACKOFF_BASE_S": "0.2",
            "SPENDSTREAM_ALERTS__BACKOFF_MAX_S": "1",
            "SPENDSTREAM_ALERTS__RESOLVE_CHECK_S": "0.5",
        }
    )


def channels(http: Receivers) -> str:
    return f"""
channels:
  acme:
    eng-slack: {{type: slack, url: "env:SPENDSTREAM_SECRET_ACME_T_SLACK_URL"}}
    leads: {{type: email, to: [lead@acme.example, cfo@acme.example]}}
    finance-teams: {{type: teams, url: "{http.url}/teams/finance"}}
    oncall-pd: {{type: pagerduty, routing_key: "env:SPENDSTREAM_SECRET_ACME_T_PD_KEY"}}
    oncall-sms: {{type: sms, to: ["+15551230000"]}}
"""


def apply(dep: Deployment, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
    result = dep.cli("budgets", "apply", handle.name)
    assert result.returncode == 0, result.stderr


def spend(n: int, tag: str, start: int = 0) -> list[UsageEvent]:
    """``n`` requests of department eng costing exactly $0.30 each (30k gpt-4o output tokens at $10/M)."""
    now = datetime.now(UTC)
    return [
        UsageEvent(
            event_id=f"{tag}-{i}",
            occurred_at=now,
            org_id="acme",
            user_id="ada",
            department_id="eng",
            feature="chat",
            provider="openai",
            model="gpt-4o",
            output_tokens=30_000,
        )
        for i in range(start, start + n)
    ]


def test_each_stage_reaches_each_recipient_once(deployment: Deployment, receivers: tuple[Receivers, object]) -> None:
    http, (controller, mailbox) = receivers
    alert_env(deployment, http, controller.port)  # type: ignore[attr-defined]
    apply(
        deployment,
        channels(http)
        + """
budgets:
  - org: acme
    scope: department
    id: eng
    period: monthly
    limit: "1.00"
    stages: [50, 80, 100]
    alerts:
      50: [eng-slack]
      80: [eng-slack, leads, finance-teams]
      100: [oncall-pd, oncall-sms]
""",
    )
    deployment.start_worker()
    events = spend(4, uuid.uuid4().hex[:8])  # $0.30, $0.60 (50%), $0.90 (80%), $1.20 (100%)
    # Top cost drivers come from ClickHouse, which trails Redis by up to a second: let the first land.
    deployment.send(events[:1])
    deployment.wait_for(lambda: deployment.ch_rows() == 1, 30, "the first event in ClickHouse")
    deployment.send(events[1:])
    deployment.send(events)  # a producer retrying: the same event ids again

    def all_arrived() -> bool:
        return (
            len(http.on("/slack/")) >= 2
            and len(mailbox.messages) >= 2  # type: ignore[attr-defined]
            and len(http.on("/teams/")) >= 1
            and len(http.on("/v2/enqueue")) >= 1
            and len(http.on("/2010-04-01/")) >= 1
        )

    deployment.wait_for(all_arrived, 60, "every stage at every receiver")

    # The same alert again on alerts.v1 (an emitter retrying): the ledger keeps it from being sent twice.
    slack_80 = next(r for r in http.on("/slack/") if "80%" in r.body["text"])
    assert slack_80 is not None
    topic = deployment.topics.alerts
    copies = []
    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": deployment.settings.kafka.bootstrap, "group.id": f"peek-{uuid.uuid4().hex}"}
        | {"auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + 20
    while len(copies) < 3 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            copies.append(message.value())
    consumer.close()
    crossings = [decode_alert(raw) for raw in copies]
    stages = sorted(a.stage for a in crossings if isinstance(a, BudgetStage))
    assert stages == [50, 80, 100]  # one record per stage, though every event was sent twice
    producer = deployment.producer()
    for raw in copies:
        producer.produce(topic, key=b"acme", value=raw)
    assert producer.flush(30) == 0
    deployment.wait_for(
        lambda: (deployment.metric("spendstream_alert_deliveries_total", 'outcome="duplicate"') or 0) >= 7,
        30,
        "the copies to be recognised",
    )
    time.sleep(1.0)

    assert [r.body["text"] for r in http.on("/slack/")] == [
        "acme: department eng reached 50% of its monthly budget",
        "acme: department eng reached 80% of its monthly budget",
    ]
    assert sorted(rcpt for _, rcpt, _ in mailbox.messages) == ["cfo@acme.example", "lead@acme.example"]  # type: ignore[attr-defined]
    _, _, mail = mailbox.messages[0]  # type: ignore[attr-defined]
    assert mail["Subject"] == "[spendstream] acme: department eng reached 80% of its monthly budget"
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in mail.walk()
        if not part.is_multipart()
    }
    assert "Spent: $0.90 of $1.00 (90.0%)" in parts["text/plain"]
    assert "Top cost drivers: ada / gpt-4o / chat $0.30 (100%)" in parts["text/plain"]
    month = datetime.now(UTC).strftime("%Y-%m")
    assert f"https://console.acme.example/billing/costs?from={month}-01&amp;to=" in parts["text/html"]
    assert "&amp;group=user&amp;department=eng" in parts["text/html"]
    (teams,) = http.on("/teams/")
    assert teams.body["attachments"][0]["content"]["body"][0]["text"].endswith("reached 80% of its monthly budget")
    (page,) = http.on("/v2/enqueue")
    assert page.body["event_action"] == "trigger" and page.body["routing_key"] == PD_KEY
    assert page.body["payload"]["severity"] == "critical"
    assert page.body["dedup_key"].endswith("|budget_stage|100")
    assert page.body["payload"]["custom_details"]["Spent"] == "$1.20 of $1.00 (120.0%)"
    (sms,) = http.on("/2010-04-01/")
    assert sms.body["To"] == "+15551230000" and sms.body["From"] == "+15550001111"
    assert sms.body["Body"].startswith("acme: department eng reached 100% of its monthly budget. $1.20 of $1.00")
    assert http.rejected == []

    history = (
        deployment.ch()
        .query(
            f"SELECT channel_type, outcome, count() FROM {deployment.settings.clickhouse.database}.alert_history "
            "GROUP BY channel_type, outcome ORDER BY channel_type, outcome"
        )
        .result_rows
    )
    # history has one row per delivery made; a recognised copy is a metric, not a row
    assert history == [
        ("email", "sent", 2),
        ("pagerduty", "sent", 1),
        ("slack", "sent", 2),
        ("sms", "sent", 1),
        ("teams", "sent", 1),
    ]


def test_failures_retries_and_a_restart_mid_delivery(
    deployment: Deployment, receivers: tuple[Receivers, object]
) -> None:
    http, (controller, _) = receivers
    alert_env(deployment, http, controller.port)  # type: ignore[attr-defined]
    apply(
        deployment,
        channels(http)
        + """
budgets:
  - org: acme
    scope: department
    id: eng
    period: monthly
    limit: "1.00"
    stages: [80]
    alerts: {80: [eng-slack, finance-teams, oncall-pd]}
""",
    )
    http.script("/slack/", [(500, {})])  # one server error, then fine
    http.script("/v2/enqueue", [(429, {"Retry-After": "2"})])  # PagerDuty throttles once
    http.hold("/teams/")  # Teams is down until released
    worker = deployment.start_worker()
    deployment.send(spend(3, uuid.uuid4().hex[:8]))  # $0.90: crosses 80%

    deployment.wait_for(lambda: len(http.on("/slack/")) == 1 and len(http.on("/v2/enqueue")) == 1, 60, "slack, pd")
    deployment.wait_for(lambda: len(http.attempts_on("/teams/")) >= 3, 30, "teams retries")
    deployment.kill_worker(worker)  # mid-delivery: Teams still failing, its alert not acknowledged
    http.release("/teams/")
    deployment.start_worker()
    deployment.wait_for(lambda: len(http.on("/teams/")) == 1, 60, "teams after the restart")
    time.sleep(2.0)

    assert len(http.on("/slack/")) == 1 and len(http.attempts_on("/slack/")) == 2  # 500, then delivered once
    assert len(http.on("/v2/enqueue")) == 1
    throttled, accepted = http.attempts_on("/v2/enqueue")
    assert accepted.at - throttled.at >= 1.9  # Retry-After: 2 was honoured
    assert len(http.on("/teams/")) == 1
    assert http.rejected == []


def test_bad_channels_are_refused_when_applied(deployment: Deployment, receivers: tuple[Receivers, object]) -> None:
    http, (controller, _) = receivers
    alert_env(deployment, http, controller.port)  # type: ignore[attr-defined]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write("channels: {acme: {pager: {type: pagerduty, routing_key: too-short}}}\n")
    result = deployment.cli("budgets", "apply", handle.name)
    assert result.returncode == 2
    assert "channels.acme.pager.routing_key: a PagerDuty integration key is 32 letters and digits" in result.stderr

    # An env reference cannot be checked on the admin's machine; the worker checks it when it applies it.
    apply(deployment, 'channels: {acme: {broken: {type: slack, url: "env:SPENDSTREAM_SECRET_ACME_T_NOT_SET"}}}\n')
    worker = deployment.start_worker()
    deployment.wait_for(
        lambda: (deployment.metric("spendstream_config_records_rejected_total") or 0) >= 1, 30, "the rejection"
    )
    deployment.kill_worker(worker)
    log = open(f"/tmp/{deployment.settings.kafka.topic_prefix}worker-0.log").read()  # noqa: SIM115
    assert "channel/acme/broken.url: environment variable SPENDSTREAM_SECRET_ACME_T_NOT_SET is not set" in log


def test_pagerduty_resolves_and_first_denial_alerts(
    deployment: Deployment, receivers: tuple[Receivers, object]
) -> None:
    http, (controller, _) = receivers
    alert_env(deployment, http, controller.port)  # type: ignore[attr-defined]
    budgets = (
        channels(http)
        + """
budgets:
  - org: acme
    scope: department
    id: eng
    period: monthly
    limit: "LIMIT"
    mode: hard
    stages: [100]
    alerts: {100: [oncall-pd], cap_denied: [eng-slack]}
"""
    )
    apply(deployment, budgets.replace("LIMIT", "1.00"))
    deployment.start_worker()
    deployment.send(spend(4, uuid.uuid4().hex[:8]))  # $1.20: over the cap
    deployment.wait_for(lambda: len(http.on("/v2/enqueue")) == 1, 60, "the page")

    caps = CapClient.from_url(deployment.settings.redis.url, key_prefix=deployment.settings.redis.key_prefix)
    subject = Subject("acme", "ada", department_id="eng")
    decisions = [caps.reserve(subject, f"r{i}", 10**8) for i in range(3)]
    assert [d.allowed for d in decisions] == [False, False, False]
    deployment.wait_for(lambda: len(http.on("/slack/")) == 1, 30, "the denial alert")
    (denial,) = http.on("/slack/")
    assert denial.body["text"] == "acme: department eng hit its hard cap; requests are being denied"

    apply(deployment, budgets.replace("LIMIT", "10.00"))  # the budget is raised above the spend
    deployment.wait_for(lambda: len(http.on("/v2/enqueue")) == 2, 30, "the resolve")
    trigger, resolve = http.on("/v2/enqueue")
    assert resolve.body == {"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": trigger.body["dedup_key"]}
    time.sleep(2.0)
    assert len(http.on("/v2/enqueue")) == 2 and len(http.on("/slack/")) == 1  # each once
    assert deployment.redis().hlen(deployment.layout.alerts_open("acme")) == 0


def test_a_replay_of_last_month_records_its_stages_late_and_pages_nobody(
    deployment: Deployment, receivers: tuple[Receivers, object]
) -> None:
    """`make run` replays 60 days of history: stages of months long closed reached the inbox minutes after
    start. A crossing in a period that ended before its event was applied is recorded as late, not sent;
    one of the current period is sent; an org that sets notify_closed_periods gets both."""
    http, (controller, _) = receivers
    alert_env(deployment, http, controller.port)  # type: ignore[attr-defined]
    budgets = """
budgets:
  - {org: acme, scope: department, id: eng, period: monthly, limit: "1.00", stages: [50], alerts: {50: [eng-slack]}}
  - {org: globex, scope: department, id: eng, period: monthly, limit: "1.00", stages: [50], alerts: {50: [gx]}}
"""
    gx = f'  globex:\n    gx: {{type: slack, url: "{http.url}/slack/globex"}}\n'
    apply(deployment, channels(http) + gx + "orgs:\n  globex: {notify_closed_periods: true}\n" + budgets)
    deployment.start_worker()
    now = datetime.now(UTC)
    last_month = (now.replace(day=1) - timedelta(days=1)).replace(day=10, hour=12, tzinfo=UTC)
    tag = uuid.uuid4().hex[:8]
    replay = [
        msgspec.structs.replace(event, occurred_at=last_month, org_id=org, event_id=f"{org}-{event.event_id}")
        for org in ("acme", "globex")
        for event in spend(2, f"{tag}-old")  # $0.60 of last month: its 50 % stage
    ]
    deployment.send(replay)
    deployment.wait_for(lambda: deployment.ch_rows() == 4, 60, "the replay in ClickHouse")
    db = deployment.settings.clickhouse.database

    def outcomes(org: str, period_key: str) -> list[str]:
        return [
            row[0]
            for row in deployment.ch()
            .query(f"SELECT outcome FROM {db}.alert_history WHERE org_id = '{org}' AND period_key = '{period_key}'")
            .result_rows
        ]

    month_before = f"{last_month:%Y-%m}"
    deployment.wait_for(lambda: outcomes("acme", month_before) == ["late_not_sent"], 60, "acme's late stage recorded")
    deployment.wait_for(lambda: outcomes("globex", month_before) == ["sent"], 60, "globex's late stage sent")
    assert http.on("/slack/eng") == []  # nobody at acme was paged for a month long closed
    assert len(http.on("/slack/globex")) == 1  # globex asked for it
    deployment.send(spend(2, f"{tag}-now"))  # this month's 50 % stage: sent as always
    deployment.wait_for(lambda: len(http.on("/slack/eng")) == 1, 60, "the current month's stage sent")
    deployment.wait_for(lambda: outcomes("acme", f"{now:%Y-%m}") == ["sent"], 30, "its history row")
