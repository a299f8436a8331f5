"""``spendstream reports``: generate a report to files."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from admin.environment import settings_from_env, warn_refused
from schemas.report_kinds import KINDS, REPORT_KINDS
from schemas.report_templates import FILTERS, NARROWING
from schemas.settings import Settings

__all__ = ["reports_parser"]


def reports_parser(commands: Any) -> None:
    reports = commands.add_parser(
        "reports",
        help=f"generate reports ({', '.join(KINDS)}) as PDF, XLSX and CSV",
        description="generate: read ClickHouse and config.v1 and write the report's files to --out "
        "(PDF, XLSX, and one CSV per table; each file is written whole or not at all), as asked or as a saved "
        "template says (--template); save, list, delete: the org's saved templates on config.v1; "
        "scheduler: run every scheduled template once per scheduled time and email its files (runs until "
        "stopped; several may run); runs: an org's runs and their outcome; fetch: a run's files again",
    )
    reports.add_argument("action", choices=["generate", "save", "list", "delete", "scheduler", "runs", "fetch"])
    reports.add_argument("--run", help="fetch: the run whose files to download again (from `reports runs`)")
    reports.add_argument("--template", help="generate: the saved template to run; save, delete: its name")
    reports.add_argument("--recipient", action="append", default=[], help="save: an email address (repeat)")
    reports.add_argument("--schedule", help="save: when to run, as cron in the org's time zone ('0 8 1 * *')")
    reports.add_argument("--days", type=int, default=30, help="save: a custom template's days up to yesterday")
    reports.add_argument(
        "--kind",
        default="monthly",
        choices=KINDS,
        help="the report (default monthly): " + "; ".join(f"{k.name}: {k.title.lower()}" for k in REPORT_KINDS),
    )
    reports.add_argument("--org", help="the org (every action but scheduler)")
    reports.add_argument("--month", help="the month's reports: YYYY-MM (default: the month before this one)")
    reports.add_argument("--from", dest="first", help="custom: the first day, YYYY-MM-DD (default: this month's first)")
    reports.add_argument("--to", dest="last", help="custom: the last day, included (default: today)")
    reports.add_argument(
        "--group", help="custom: provider, model, feature, department, user, api_key or tag:KEY (default model)"
    )
    reports.add_argument("--granularity", help="custom: day, week or month (default day)")
    for name in NARROWING:
        reports.add_argument(f"--{name}", help=f"custom: only this {name}")
    reports.add_argument("--api-key", dest="api_key", help="custom: only this API key (or --tag, not both)")
    reports.add_argument("--tag", help="custom: only this value of a declared tag, KEY=VALUE (project=apollo)")
    reports.add_argument(
        "--format", action="append", default=[], help="pdf, xlsx or csv; repeat or separate with commas (default pdf)"
    )
    reports.add_argument("--out", default="reports-out", help="the folder (default ./reports-out)")
    reports.add_argument("--bom", action="store_true", help="CSV: start with a UTF-8 byte-order mark, for Excel")
    reports.set_defaults(func=cmd_reports)


def cmd_reports(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    if args.action != "scheduler" and not args.org:
        print("error: org: --org is required", file=sys.stderr)
        return 2
    if args.action in ("scheduler", "runs", "fetch"):
        from admin.report_runs_cli import runs_command  # noqa: PLC0415

        return runs_command(settings, args)
    if args.action != "generate":
        from admin.report_templates_cli import templates_command  # noqa: PLC0415

        return templates_command(settings, args)
    return _generate(settings, args)


def _generate(settings: Settings, args: argparse.Namespace) -> int:
    from bus.config_topic import config_state  # noqa: PLC0415 - only this command needs Kafka and ClickHouse
    from bus.topics import Topics  # noqa: PLC0415
    from reports.build import build_report  # noqa: PLC0415
    from reports.files import ReportError, parse_formats, write_report  # noqa: PLC0415
    from reports.filters import FilterError, parse_month  # noqa: PLC0415
    from schemas.budgets import OrgConfig  # noqa: PLC0415
    from sinks.usage_store import UsageStore  # noqa: PLC0415

    now = datetime.now(UTC)
    if args.template:
        from admin.report_templates_cli import apply_template  # noqa: PLC0415

        if (code := apply_template(settings, args, now)) != 0:
            return code
    try:
        formats = parse_formats(args.format)
        month = parse_month(args.month, now.date())
        labels = label_filters(args)
    except (ReportError, FilterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    began = time.monotonic()
    state = config_state(settings.kafka.bootstrap, Topics(settings.kafka.topic_prefix).config, on_error=warn_refused)
    if args.org not in state.orgs and args.org not in _orgs_with_usage(UsageStore.of(settings.clickhouse)):
        print(f"error: org: {args.org!r} has no config and no usage", file=sys.stderr)
        return 2
    store = UsageStore.of(settings.clickhouse)
    today = datetime.now(ZoneInfo(state.orgs.get(args.org, OrgConfig(args.org)).timezone)).date()
    params = {k: str(getattr(args, k)) for k in FILTERS if getattr(args, k, None)} | labels
    params.update({"from": args.first or "", "to": args.last or "", "month": f"{month:%Y-%m}"})
    print(f"reading {args.org} from ClickHouse", file=sys.stderr)
    try:
        report = build_report(store, state, args.org, args.kind, today, now, params)
    except (ReportError, FilterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_report(report, formats, Path(args.out), bom=args.bom, progress=lambda line: print(line, file=sys.stderr))
    print(f"done in {time.monotonic() - began:.1f} s", file=sys.stderr)
    return 0


def label_filters(args: argparse.Namespace) -> dict[str, str]:
    """``--api-key`` and ``--tag KEY=VALUE`` as the filter parameters (``api_key``, ``tag:KEY``)."""
    from reports.filters import FilterError  # noqa: PLC0415

    found = {"api_key": args.api_key} if getattr(args, "api_key", None) else {}
    if getattr(args, "tag", None):
        key, sep, value = str(args.tag).partition("=")
        if not sep or not key or not value:
            raise FilterError("tag", f"{str(args.tag)[:60]!r}: KEY=VALUE, such as project=apollo")
        found[f"tag:{key}"] = value
    return found


def _orgs_with_usage(store: Any) -> set[str]:
    try:
        return {str(r[0]) for r in store.query(f"SELECT DISTINCT org_id FROM {store.database}.usage_daily")}  # noqa: S608
    except Exception:  # noqa: BLE001 - no tables yet: no org has usage
        return set()
