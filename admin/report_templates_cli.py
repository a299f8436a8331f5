"""``spendstream reports save|list|delete``: an org's saved report templates, on ``config.v1``; and
``reports generate --template NAME``, which runs one."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from admin.environment import warn_refused
from schemas.config_records import ConfigState
from schemas.report_templates import FILTERS
from schemas.settings import Settings

__all__ = ["apply_template", "templates_command"]


def _state(settings: Settings) -> ConfigState:
    from bus.config_topic import config_state  # noqa: PLC0415 - reading Kafka only here
    from bus.topics import Topics  # noqa: PLC0415

    return config_state(settings.kafka.bootstrap, Topics(settings.kafka.topic_prefix).config, on_error=warn_refused)


def templates_command(settings: Settings, args: argparse.Namespace) -> int:
    from admin.reports_cli import label_filters  # noqa: PLC0415
    from bus.config_topic import publish_config  # noqa: PLC0415
    from bus.topics import Topics  # noqa: PLC0415
    from reports.filters import FilterError  # noqa: PLC0415
    from schemas.config_records import ConfigRecord, template_record  # noqa: PLC0415
    from schemas.report_templates import TemplateError, parse_template  # noqa: PLC0415

    state = _state(settings)
    topics = Topics(settings.kafka.topic_prefix)
    if args.action == "list":
        for (owner, name), t in sorted(state.reports.items()):
            if owner == args.org:
                when = t.schedule or "on demand"
                print(f"{name:<24} {t.kind:<12} {','.join(t.formats):<12} {when:<16} {', '.join(t.recipients)}")
        return 0
    if not args.template:
        print("error: template: --template NAME is required", file=sys.stderr)
        return 2
    if args.action == "delete":
        if (args.org, args.template) not in state.reports:
            print(f"error: template: no template {args.template!r} in org {args.org}", file=sys.stderr)
            return 2
        publish_config(settings.kafka.bootstrap, topics, [ConfigRecord(f"report/{args.org}/{args.template}", None)])
        print(f"deleted template {args.template}")
        return 0
    formats = [f.strip() for value in args.format for f in value.split(",") if f.strip()] or ["pdf"]
    body = {
        "kind": args.kind,
        "formats": formats,
        "recipients": args.recipient,
        "schedule": args.schedule,
        "days": args.days,
        "saved_at": datetime.now(UTC).isoformat(),
        "filters": {k: getattr(args, k) for k in FILTERS if getattr(args, k, None)},
    }
    try:
        body["filters"] |= label_filters(args)
        template = parse_template(args.org, args.template, body)
    except (TemplateError, FilterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    publish_config(settings.kafka.bootstrap, topics, [template_record(template)])
    org = state.orgs.get(args.org)
    zone = ZoneInfo(org.timezone if org else "UTC")
    upcoming = template.next_run(datetime.now(zone))
    print(f"saved template {template.name}" + (f"; next run {upcoming:%Y-%m-%d %H:%M %Z}" if upcoming else ""))
    return 0


def apply_template(settings: Settings, args: argparse.Namespace, now: datetime) -> int:
    """Fill ``args`` from the saved template: its kind, formats and filters, and its period as of ``now``."""
    state = _state(settings)
    template = state.reports.get((args.org, args.template))
    if template is None:
        print(f"error: template: no template {args.template!r} in org {args.org}", file=sys.stderr)
        return 2
    args.kind = template.kind
    args.format = args.format or list(template.formats)
    for key, value in template.filters:
        if key.startswith("tag:"):
            args.tag = f"{key.removeprefix('tag:')}={value}"
        else:
            setattr(args, key, value)  # api_key, a grouping or a narrowing
    if template.kind == "custom":
        org = state.orgs.get(args.org)
        today = now.astimezone(ZoneInfo(org.timezone if org else "UTC")).date()
        args.first = (today - timedelta(days=template.days)).isoformat()
        args.last = (today - timedelta(days=1)).isoformat()
    return 0
