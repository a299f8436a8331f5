"""The ``spendstream`` command."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from pydantic import ValidationError

from schemas.settings import Settings
from stack import manager
from stack.process import StartError

__all__ = ["main"]


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"  SPENDSTREAM_{'__'.join(str(p).upper() for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SystemExit("invalid settings in the environment:\n" + "\n".join(lines)) from None


def _print_status(settings: Settings) -> bool:
    rows = manager.status(settings.stack)
    print(f"{'service':<11} {'state':<9} {'pid':>7}  {'address':<28} data")
    for row in rows:
        state = "ready" if row.ready else ("starting" if row.running else "stopped")
        print(f"{row.name:<11} {state:<9} {row.pid or '-':>7}  {row.address:<28} {row.data}")
    return all(row.ready for row in rows)


def cmd_stack(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.action == "up":
        began = time.perf_counter()
        try:
            reports = manager.up(settings.stack)
        except StartError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for report in reports:
            verb = "started" if report.started else "already running"
            print(f"{report.name:<11} {verb} ({report.seconds:.1f} s)")
        print(f"stack up in {time.perf_counter() - began:.1f} s")
        return 0 if _print_status(settings) else 1
    if args.action == "down":
        for name, stopped in manager.down(settings.stack):
            print(f"{name:<11} {'stopped' if stopped else 'was not running'}")
        return 0
    if args.action == "install":
        for service in manager.all_services(settings.stack):
            service.install()
            print(f"{service.name:<11} installed")
        return 0
    return 0 if _print_status(settings) else 3


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        manager.up(settings.stack)
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    healthy = _print_status(settings)
    print()
    print("The local stack is up:")
    print(f"  Kafka       {settings.kafka.bootstrap}")
    print(f"  Redis       {settings.redis.url}")
    print(f"  ClickHouse  http://{settings.clickhouse.host}:{settings.clickhouse.port}  (metrics at /metrics)")
    print(f"  logs, data  {settings.stack.home}")
    print("Stop it with: spendstream stack down")
    return 0 if healthy else 1


def cmd_budgets(args: argparse.Namespace) -> int:
    import redis  # noqa: PLC0415 - only this command needs it

    from enforcement.budget_store import apply_budgets, read_budgets  # noqa: PLC0415
    from enforcement.keys import KeyLayout  # noqa: PLC0415
    from schemas.budget_file import BudgetFileError, parse_budget_file  # noqa: PLC0415
    from schemas.money import format_usd  # noqa: PLC0415

    settings = _settings()
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    client = redis.Redis.from_url(settings.redis.url, password=password)
    layout = KeyLayout(settings.redis.key_prefix)
    if args.action == "apply":
        try:
            parsed = parse_budget_file(args.file.read())
        except BudgetFileError as exc:
            print(f"error: {args.file.name}: {exc}", file=sys.stderr)
            return 2
        count = apply_budgets(client, layout, parsed.orgs.values(), parsed.budgets)
        print(f"applied {count} budgets for {len(parsed.orgs)} orgs")
        return 0
    if not args.org:
        print("error: --org is required for list", file=sys.stderr)
        return 2
    for budget_field, value in sorted(read_budgets(client, layout, args.org).items()):
        limit, mode, stages = value.split("|")
        print(f"{budget_field:<40} {mode:<5} {format_usd(int(limit)):>16}  stages {stages}")
    return 0


def cmd_decision(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - only this command needs it

    from enforcement.client import AsyncCapClient  # noqa: PLC0415
    from enforcement.service import create_app  # noqa: PLC0415

    settings = _settings()
    keys = settings.decision.keys()
    if not keys:
        print("error: set SPENDSTREAM_DECISION__API_KEYS to the proxies' API keys (comma-separated)", file=sys.stderr)
        return 2
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    client = AsyncCapClient.from_url(
        settings.redis.url,
        password=password,
        timeout_s=settings.decision.timeout_s,
        key_prefix=settings.redis.key_prefix,
        reservation_ttl_s=settings.decision.reservation_ttl_s,
        on_redis_unavailable=settings.decision.on_redis_unavailable,
    )
    app = create_app(client, keys)
    uvicorn.run(
        app,
        host=settings.decision.host,
        port=args.port or settings.decision.port,
        log_level="warning",
        access_log=False,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spendstream",
        description="Meter, cap and forecast what an organisation spends on LLMs. "
        "Settings come from SPENDSTREAM_* environment variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    stack = commands.add_parser("stack", help="the local services: Kafka, Redis, embedded ClickHouse")
    stack.add_argument(
        "action",
        choices=["up", "down", "status", "install"],
        help="up: start what is not running; down: stop what up started; "
        "status: show what runs where (exit 3 unless all ready); install: fetch without starting",
    )
    stack.set_defaults(func=cmd_stack)
    budgets = commands.add_parser("budgets", help="apply a budgets file, or list an org's budgets")
    budgets.add_argument("action", choices=["apply", "list"])
    budgets.add_argument("file", nargs="?", type=argparse.FileType("r"), help="budgets YAML (for apply)")
    budgets.add_argument("--org", help="the org to list")
    budgets.set_defaults(func=cmd_budgets)
    decision = commands.add_parser("decision", help="the decision HTTP service for proxies")
    decision.add_argument("action", choices=["serve"])
    decision.add_argument("--port", type=int, help="overrides SPENDSTREAM_DECISION__PORT")
    decision.set_defaults(func=cmd_decision)
    demo = commands.add_parser("demo", help="the main job: bring the stack up and show where to look")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
