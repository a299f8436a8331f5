"""Scheduled templates: one run per template and scheduled time, across several schedulers, a scheduler
killed and started again, a claim left by a scheduler that died mid-run, and failed attempts."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from admin.report_scheduler import ReportScheduler, run_id_of
from bus.config_topic import publish_config
from schemas.config_records import ConfigRecord, ConfigState, template_record
from schemas.report_templates import parse_template
from schemas.settings import ReportSettings, Settings
from sinks.report_runs import run_file, runs_of
from sinks.usage_store import UsageStore
from tests.deployment import Deployment, deployed, scheduler_polls, start_report_scheduler
from tests.receivers import start_smtp

pytestmark = pytest.mark.stack
BERLIN = ZoneInfo("Europe/Berlin")


def _first_of_month(day: date, back: int) -> date:
    for _ in range(back):
        day = day.replace(day=1) - timedelta(days=1)
    return day.replace(day=1)


@pytest.fixture
def dep(stack: Settings) -> Iterator[Deployment]:
    with deployed(stack) as deployment:
        UsageStore.of(deployment.settings.clickhouse).migrate()
        yield deployment


def _publish(dep: Deployment, saved_at: datetime, recipients: list[str], schedule: str = "0 8 1 * *") -> None:
    org = ConfigRecord("org/acme", json.dumps({"timezone": "Europe/Berlin"}).encode())
    body = {
        "kind": "chargeback",
        "formats": ["xlsx", "csv"],
        "recipients": recipients,
        "schedule": schedule,
        "saved_at": saved_at.isoformat(),
    }
    publish_config(
        dep.settings.kafka.bootstrap, dep.topics, [org, template_record(parse_template("acme", "close", body))]
    )


def _attachments(message: Message) -> dict[str, bytes]:
    return {
        str(part.get_filename()): bytes(part.get_payload(decode=True))  # type: ignore[arg-type]
        for part in message.walk()
        if part.get_filename()
    }


def test_a_scheduled_template_runs_once_across_two_schedulers_a_kill_and_a_restart(dep: Deployment) -> None:
    controller, mailbox = start_smtp()
    try:
        now = datetime.now(BERLIN)
        # the month of the latest scheduled time (the 1st, 08:00 Berlin): before 08:00 on the 1st, last month's
        today = now.date() if now.hour >= 8 or now.day > 1 else _first_of_month(now.date(), 1)
        # saved before the last two scheduled times (the 1st of last month and of this one, 08:00 Berlin):
        # both were missed, and the latest is caught up once
        saved = datetime.combine(_first_of_month(today, 2), datetime.min.time(), BERLIN) + timedelta(days=3)
        _publish(dep, saved, ["cfo@acme.example", "ap@acme.example"])
        first = [start_report_scheduler(dep, controller.port) for _ in range(2)]
        store = UsageStore.of(dep.settings.clickhouse)
        dep.wait_for(lambda: any(r.outcome == "sent" for r in runs_of(store, "acme")), 90, "a sent run")
        for proc, _ in first:
            proc.kill()
            proc.wait()
        proc, port = start_report_scheduler(dep, controller.port)
        restarted = time.time()
        dep.wait_for(lambda: scheduler_polls(port) > restarted + 1, 60, "the restarted scheduler to poll for a while")
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        controller.stop()

    runs = runs_of(store, "acme")
    this_month = datetime.combine(today.replace(day=1), datetime.min.time(), BERLIN).replace(hour=8)
    assert [(r.run_id, r.outcome, r.attempt, r.period) for r in runs] == [
        (f"close@{this_month.astimezone(UTC):%Y-%m-%dT%H:%MZ}", "sent", 1, f"{_first_of_month(today, 1):%Y-%m}")
    ]
    assert sorted(recipient for _, recipient, _ in mailbox.messages) == ["ap@acme.example", "cfo@acme.example"]
    message = mailbox.messages[0][2]
    assert message["Message-ID"] == f"<acme.close.{this_month.astimezone(UTC):%Y-%m-%dT%H.%MZ}@spendstream>"
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None  # alert emails carry one; so do reports
    body = next(
        part.get_payload(decode=True).decode()
        for part in message.walk()
        if part.get_content_type() == "text/plain" and part.get_filename() is None
    )
    assert f"spendstream reports fetch --org acme --run {runs[0].run_id}" in body  # `reports runs` only lists
    assert re.search(r"^  \S.*: \$[0-9,]+\.[0-9]{2}", body, re.M), body  # a headline figure before the files
    files = _attachments(message)
    assert sorted(files) == sorted(runs[0].files)
    assert any(name.endswith(".xlsx") for name in files) and any(name.endswith(".csv") for name in files)
    for name, content in files.items():  # what the email carried can be downloaded again, byte for byte
        assert run_file(store, "acme", runs[0].run_id, name) == content
    book = openpyxl.load_workbook(io.BytesIO(next(c for n, c in files.items() if n.endswith(".xlsx"))))
    assert book.sheetnames


def _in_process(dep: Deployment, send: Any, lease_s: float, clock: datetime) -> ReportScheduler:
    from prometheus_client import CollectorRegistry

    def read() -> ConfigState:
        from bus.config_topic import config_state

        return config_state(dep.settings.kafka.bootstrap, dep.topics.config)

    settings = ReportSettings(poll_s=1, lease_s=lease_s, max_attempts=2)
    return ReportScheduler(
        settings,
        UsageStore.of(dep.settings.clickhouse),
        dep.redis(),
        dep.settings.redis.key_prefix,
        read,
        send,
        clock=lambda: clock,
        registry=CollectorRegistry(),
    )


def test_a_claim_left_by_a_dead_scheduler_is_taken_over_after_its_lease_and_failures_are_retried_then_given_up(
    dep: Deployment,
) -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    _publish(dep, now - timedelta(days=1), ["cfo@acme.example"], schedule="0 * * * *")
    sent: list[Any] = []

    def refuse(message: Any) -> None:
        sent.append(message)
        raise ConnectionRefusedError("the SMTP server is down")

    scheduler = _in_process(dep, refuse, lease_s=1, clock=now)
    template = parse_template("acme", "close", {"kind": "chargeback", "schedule": "0 * * * *"})
    due = datetime(2026, 11, 30, 13, tzinfo=BERLIN)  # 12:00 UTC is 13:00 in Berlin
    key = f"{dep.settings.redis.key_prefix}:{{acme}}:report-run:{run_id_of(template, due)}"
    dep.redis().set(key, "a scheduler that died", px=1000)  # claimed, never finished
    assert scheduler.poll() == []
    time.sleep(1.1)
    assert scheduler.poll() == [f"close@{now:%Y-%m-%dT%H:%MZ}"]  # taken over: attempt 1 fails (SMTP down)
    assert scheduler.poll() == []  # within the failed attempt's lease
    time.sleep(1.1)
    assert scheduler.poll() == [f"close@{now:%Y-%m-%dT%H:%MZ}"]  # attempt 2 fails too
    time.sleep(1.1)
    assert scheduler.poll() == []  # given up after max_attempts
    store = UsageStore.of(dep.settings.clickhouse)
    runs = sorted(runs_of(store, "acme"), key=lambda r: r.attempt)
    assert [(r.attempt, r.outcome, r.files) for r in runs] == [(1, "failed", []), (2, "failed", [])]
    assert "ConnectionRefusedError: the SMTP server is down" in runs[0].error
    assert len(sent) == 2 and sent[0]["Message-ID"] == sent[1]["Message-ID"]
