"""``spendstream stack up | down | status | install``: the local services, one broker or three."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from admin.environment import settings_from_env
from schemas.settings import Settings
from stack import manager
from stack.kafka_service import bootstrap_of
from stack.process import StartError

__all__ = ["print_status", "stack_parser"]


def print_status(settings: Settings, names: Sequence[str] | None = None) -> bool:
    rows = manager.status(settings.stack, names)
    print(f"{'service':<11} {'state':<9} {'pid':>7}  {'address':<28} data")
    for row in rows:
        state = "stale" if row.stale else "ready" if row.ready else ("starting" if row.running else "stopped")
        print(f"{row.name:<11} {state:<9} {row.pid or '-':>7}  {row.address:<28} {row.data}")
        if row.owner is not None:
            print(f"{'':<11} started by {row.owner.describe()}")
        if row.stale:
            print(f"{'':<11} not this installation's: {row.stale}; `spendstream stack up` restarts it")
    return all(row.ready for row in rows)


def cmd_stack(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    if args.brokers is not None:
        settings = settings.model_copy(
            update={"stack": settings.stack.model_copy(update={"kafka_brokers": args.brokers})}
        )
    names = args.services or None
    try:
        manager.chosen(settings.stack, names)
    except ValueError as exc:  # a name no service has
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.action == "up":
        began = time.perf_counter()
        try:
            reports = manager.up(settings.stack, names)
        except StartError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for report in reports:
            verb = "started" if report.started else "already running"
            if report.restarted:
                verb = f"restarted on its data ({report.restarted})"
            print(f"{report.name:<11} {verb} ({report.seconds:.1f} s)")
        print(f"stack up in {time.perf_counter() - began:.1f} s")
        if settings.stack.kafka_brokers > 1 and (not names or "kafka" in names):
            print(f"Kafka's brokers: SPENDSTREAM_KAFKA__BOOTSTRAP={bootstrap_of(settings.stack)}")
        return 0 if print_status(settings, names) else 1
    if args.action == "down":
        for name, stopped in manager.down(settings.stack, names):
            print(f"{name:<11} {'stopped' if stopped else 'was not running'}")
        return 0
    if args.action == "install":
        for service in manager.all_services(settings.stack):
            service.install()
            print(f"{service.name:<11} installed")
        return 0
    return 0 if print_status(settings, names) else 3


def stack_parser(commands: Any) -> None:
    stack = commands.add_parser("stack", help="the local services: Kafka, Redis, embedded ClickHouse")
    stack.add_argument(
        "action",
        choices=["up", "down", "status", "install"],
        help="up: start what is not running; down: stop what up started; "
        "status: show what runs where and which installation started it (exit 3 unless all ready); "
        "install: fetch without starting. up restarts, on its data, a service that another installation "
        "started with other code or settings",
    )
    stack.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help="only these: redis, clickhouse, kafka (every Kafka node) or kafka-N (default: all)",
    )
    stack.add_argument(
        "--brokers",
        type=int,
        choices=[1, 3],
        help="Kafka as one broker, or three in KRaft (replication 3, min.insync.replicas 2; default: "
        "SPENDSTREAM_STACK__KAFKA_BROKERS, else 1); each layout has its own data, up stops the other's",
    )
    stack.set_defaults(func=cmd_stack)
