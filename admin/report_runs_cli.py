"""``spendstream reports scheduler|runs|fetch``: run saved templates on their schedule (a long-running
process with Prometheus metrics), list an org's runs, and download a run's files again."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from schemas.settings import Settings

__all__ = ["runs_command"]


def runs_command(settings: Settings, args: argparse.Namespace) -> int:
    from sinks.usage_store import UsageStore  # noqa: PLC0415 - ClickHouse only here

    store = UsageStore.of(settings.clickhouse)
    if args.action == "scheduler":
        return _scheduler(settings, store, args)
    if args.action == "runs":
        from sinks.report_runs import runs_of  # noqa: PLC0415

        for run in runs_of(store, args.org):
            error = f"  {run.error}" if run.error else ""
            print(
                f"{run.run_id:<40} {run.period:<24} attempt {run.attempt} {run.outcome:<8} "
                f"{run.finished_at:%Y-%m-%d %H:%M:%S} {', '.join(run.files)}{error}"
            )
        return 0
    return _fetch(store, args)


def _fetch(store: Any, args: argparse.Namespace) -> int:
    from sinks.report_runs import run_file, runs_of  # noqa: PLC0415

    if not args.run:
        print("error: run: --run RUN_ID is required (see `spendstream reports runs`)", file=sys.stderr)
        return 2
    finished = [r for r in runs_of(store, args.org, limit=10_000) if r.run_id == args.run and r.outcome != "failed"]
    if not finished:
        print(f"error: run: no finished run {args.run!r} in org {args.org}", file=sys.stderr)
        return 2
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    for name in finished[0].files:
        content = run_file(store, args.org, args.run, name)
        if content is None:
            print(f"error: run: the file {name} of {args.run} is missing", file=sys.stderr)
            return 1
        (folder / name).write_bytes(content)
        print(f"wrote {folder / name} ({len(content):,} bytes)", file=sys.stderr)
    return 0


def _scheduler(settings: Settings, store: Any, args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server  # noqa: PLC0415

    from admin.report_scheduler import ReportScheduler  # noqa: PLC0415
    from alerting.senders import SmtpConfig, send_smtp  # noqa: PLC0415
    from bus.config_topic import ConfigCache  # noqa: PLC0415
    from bus.topics import Topics  # noqa: PLC0415
    from enforcement.redis_clients import sync_redis  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    store.migrate()
    smtp = SmtpConfig.of(settings.alerts)
    scheduler = ReportScheduler(
        settings.reports,
        store,
        sync_redis(settings.redis),
        settings.redis.key_prefix,
        ConfigCache.of(settings.kafka.bootstrap, Topics(settings.kafka.topic_prefix), max_age_s=0).state,
        (lambda message: send_smtp(smtp, message)) if smtp else None,
        sender=settings.alerts.smtp_from,
    )
    port = settings.reports.metrics_port
    server, _ = start_http_server(port)
    print(
        f"report scheduler up: polling every {settings.reports.poll_s:g} s, "
        f"metrics on :{server.server_address[1]}/metrics",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: scheduler.stop())
    with contextlib.suppress(KeyboardInterrupt):
        scheduler.serve()
    return 0
