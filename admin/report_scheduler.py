"""The report scheduler: every saved template with a schedule runs once per scheduled time, however many
schedulers run and however often they restart.

A run is claimed in Redis (``SET NX`` with a lease, under the org's hash tag) before anything is read,
and is settled in ClickHouse (``report_runs``): a run with a finished attempt is never run again, even by
a Redis that lost its keys. A scheduler that dies mid-run leaves its claim to expire after ``lease_s``;
then another scheduler (or the same one, restarted) takes the run over. A failed attempt (ClickHouse
away, a render that raised, an SMTP server that refused) is recorded and retried after the lease, up to
``max_attempts``. Several scheduled times missed while no scheduler ran give one run, of the latest.

The files go into ``report_files`` before the email goes out, so the run's record always names files
that can be downloaded again. Email is at least once: a scheduler killed between the SMTP hand-off and
the record sends it again after the lease, with the same Message-ID.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from reports.build import build_report, template_params
from reports.files import Format, render_files
from reports.mail import headline, report_email
from reports.model import Report
from schemas.budgets import OrgConfig
from schemas.config_records import ConfigState
from schemas.report_templates import ReportTemplate
from schemas.settings import ReportSettings
from sinks.report_runs import last_settled, record_files, record_run, run_state
from sinks.tables import ReportRunRow
from sinks.usage_store import UsageStore

__all__ = ["ReportScheduler", "run_id_of"]

log = logging.getLogger("spendstream.reports")


def run_id_of(template: ReportTemplate, due: datetime) -> str:
    """The run of ``template`` for its scheduled time ``due`` (or the second a run was asked for): unique
    per org."""
    at = due.astimezone(UTC)
    return f"{template.name}@{at:%Y-%m-%dT%H:%M}{f':{at:%S}' if at.second else ''}Z"


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "spendstream_report_runs",
            "Report run attempts by outcome (sent, rendered, failed)",
            ["outcome"],
            registry=registry,
        )
        self.polled = Gauge(
            "spendstream_report_scheduler_last_poll_timestamp_seconds",
            "When the scheduler last looked",
            registry=registry,
        )
        self.seconds = Counter(
            "spendstream_report_render_seconds", "Seconds spent reading and rendering reports", registry=registry
        )


class ReportScheduler:
    def __init__(
        self,
        settings: ReportSettings,
        store: UsageStore,
        redis: object,
        key_prefix: str,
        read_config: Callable[[], ConfigState],
        send: Callable[[EmailMessage], None] | None,
        sender: str = "spendstream@localhost",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.settings, self.store, self.redis, self.prefix = settings, store, redis, key_prefix
        self.read_config, self.send, self.sender, self.clock = read_config, send, sender, clock
        self.worker = f"{socket.gethostname()}:{id(self):x}"
        self.metrics = _Metrics(registry)
        self.stopping = threading.Event()

    def serve(self) -> None:
        """Poll until :meth:`stop`; a poll that fails is logged and the next one tries again."""
        while not self.stopping.is_set():
            try:
                self.poll()
            except Exception:
                log.exception("a report poll failed; trying again in %.0f s", self.settings.poll_s)
            self.stopping.wait(self.settings.poll_s)

    def stop(self) -> None:
        self.stopping.set()

    def poll(self) -> list[str]:
        """Run every template that is due; the runs this call made (or tried)."""
        state = self.read_config()
        now = self.clock()
        ran = []
        for (org_id, _), template in sorted(state.reports.items()):
            if template.schedule is None and template.run_requested_at is None:
                continue
            zone = ZoneInfo(template.timezone or state.orgs.get(org_id, OrgConfig(org_id)).timezone)
            settled = last_settled(self.store, org_id, template.name, self.settings.max_attempts)
            asked = template.run_requested_at
            if asked is not None and asked <= now and (settled is None or asked > settled):
                due: datetime | None = asked.replace(microsecond=0).astimezone(zone)  # "Run now", paused or not
            elif template.paused:
                continue
            else:
                due = template.last_due(now.astimezone(zone), settled.astimezone(zone) if settled else None)
            if due is not None and self._run(state, template, due):
                ran.append(run_id_of(template, due))
        self.metrics.polled.set(time.time())
        return ran

    def _claim_key(self, template: ReportTemplate, due: datetime) -> str:
        return f"{self.prefix}:{{{template.org_id}}}:report-run:{run_id_of(template, due)}"

    def _run(self, state: ConfigState, template: ReportTemplate, due: datetime) -> bool:
        key = self._claim_key(template, due)
        if not self.redis.set(key, self.worker, nx=True, px=int(self.settings.lease_s * 1000)):  # type: ignore[attr-defined]
            return False  # another scheduler holds it, or an attempt failed within the lease
        finished, failed = run_state(self.store, template.org_id, template.name, due)
        if finished:
            return False
        run_id, attempt, started = run_id_of(template, due), failed + 1, self.clock()
        params = template_params(template, due.date())
        period = params.get("month") or f"{params['from']}..{params['to']}"
        files: list[tuple[str, bytes]] = []

        def record(outcome: str, error: str = "") -> None:
            row = ReportRunRow(
                run_id, template.org_id, template.name, due.astimezone(UTC), period, attempt, outcome, error,
                [name for name, _ in files], list(template.recipients), self.worker, started, self.clock(),
            )  # fmt: skip
            record_run(self.store, row)
            self.metrics.runs.labels(outcome).inc()

        try:
            began = time.monotonic()
            report = build_report(self.store, state, template.org_id, template.kind, due.date(), started, params)
            files = render_files(report, [Format(f) for f in template.formats])
            self.metrics.seconds.inc(time.monotonic() - began)
            record_files(self.store, template.org_id, run_id, files)
            outcome = "rendered"
            if template.recipients:
                if self.send is None:
                    raise RuntimeError("email is not configured (SPENDSTREAM_ALERTS__SMTP_HOST)")
                self.send(self._email(template, report, due, files))
                outcome = "sent"
        except Exception as exc:
            log.warning("report run %s of %s failed (attempt %d)", run_id, template.org_id, attempt, exc_info=True)
            files = []
            record("failed", f"{type(exc).__name__}: {exc}"[:500])
            return True
        record(outcome)
        log.info("report run %s of %s %s: %s", run_id, template.org_id, outcome, ", ".join(n for n, _ in files))
        return True

    def _email(
        self, template: ReportTemplate, report: Report, due: datetime, files: list[tuple[str, bytes]]
    ) -> EmailMessage:
        run_id = run_id_of(template, due)
        period = f"{report.first:%Y-%m}" if report.whole_month else f"{report.first} to {report.last}"
        subject = f"{report.title}: {report.org_id}, {period}"
        asked = template.run_requested_at is not None and due == template.run_requested_at.replace(microsecond=0)
        which = "report asked for" if asked else "scheduled report"
        text = (
            f"The {which} '{template.name}' ({template.kind}) for {report.org_id}, {period}, is attached.\n\n"
            f"{headline(report)}\n\nRun {run_id}. Download its files again with "
            f"`spendstream reports fetch --org {report.org_id} --run {run_id}`, "
            "or from Admin > Billing > Generate Report.\n"
        )
        return report_email(
            self.sender, template.recipients, subject, text, files, f"{template.org_id}.{run_id}", self.clock()
        )
