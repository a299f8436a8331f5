"""The ``spendstream`` command."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from admin.console_cli import console_parser
from admin.environment import settings_from_env
from admin.reports_cli import reports_parser
from admin.stack_cli import print_status, stack_parser
from schemas.settings import Settings
from stack import manager
from stack.process import StartError
from workloads.generators import DEFAULT_TRACE

__all__ = ["main"]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HISTORY_START = datetime(1970, 1, 1, tzinfo=UTC)


_settings = settings_from_env


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: the whole pipeline on the local stack, fed by a replay of the sample trace."""
    from admin.demo import run_demo  # noqa: PLC0415

    settings = _settings()
    print("1/5 starting the local stack (Kafka, Redis, embedded ClickHouse)")
    try:
        manager.up(settings.stack)
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not print_status(settings):
        return 1
    return run_demo(settings, args.count, Path(args.trace), EXAMPLES, _publish)


def _publish(settings: Settings, records: list[Any]) -> None:
    from bus.config_topic import ConfigPublishError, publish_config  # noqa: PLC0415 - publishing commands only
    from bus.topics import Topics  # noqa: PLC0415

    try:
        publish_config(settings.kafka.bootstrap, Topics(settings.kafka.topic_prefix), records)
    except ConfigPublishError as exc:
        raise SystemExit(f"error: {exc}") from None


def cmd_budgets(args: argparse.Namespace) -> int:
    from bus.config_topic import read_config  # noqa: PLC0415
    from bus.topics import Topics  # noqa: PLC0415
    from schemas.budget_file import BudgetFileError, parse_budget_file  # noqa: PLC0415
    from schemas.config_records import ConfigState, file_records  # noqa: PLC0415
    from schemas.money import format_usd  # noqa: PLC0415

    settings = _settings()
    topic = Topics(settings.kafka.topic_prefix).config
    state = ConfigState()
    for record, _, _ in read_config(settings.kafka.bootstrap, topic)[0]:
        try:
            state.apply(record)
        except ValueError as exc:  # the worker refuses it too; say so, and go on
            print(f"warning: {exc}", file=sys.stderr)
    if args.action == "apply":
        if args.file is None:
            print("error: budgets apply needs a budgets YAML file", file=sys.stderr)
            return 2
        try:
            parsed = parse_budget_file(args.file.read())
        except BudgetFileError as exc:
            print(f"error: {args.file.name}: {exc}", file=sys.stderr)
            return 2
        records, removed = file_records(parsed, state)
        _publish(settings, records)
        print(
            f"published {len(parsed.budgets)} budgets and {len(parsed.channels)} alert channels"
            f" for {len(parsed.orgs)} orgs to {topic}" + (f", removed {removed}" if removed else "")
        )
        return 0
    for key, budget in sorted(state.budgets.items()):
        if args.org and budget.org_id != args.org:
            continue
        stages = ",".join(str(s) for s in budget.stages)
        print(f"{key:<50} {budget.mode.value:<5} {format_usd(budget.limit_nanos):>16}  stages {stages}")
    return 0


def cmd_prices(args: argparse.Namespace) -> int:
    from schemas.config_records import prices_litellm_record, prices_overrides_record  # noqa: PLC0415
    from schemas.pricing import PricingError  # noqa: PLC0415

    settings = _settings()
    try:
        if args.litellm:
            # default: since the start of history, so events from before the import are priced too
            effective = datetime.fromisoformat(args.effective_from) if args.effective_from else HISTORY_START
            if effective.tzinfo is None:
                print("error: --effective-from needs a time zone, e.g. 2024-06-01T00:00:00+00:00", file=sys.stderr)
                return 2
            records = [prices_litellm_record(args.litellm.read(), effective)]
        elif args.overrides:
            records = [prices_overrides_record(args.overrides.read())]
        else:
            print("error: give --litellm FILE or --overrides FILE", file=sys.stderr)
            return 2
    except PricingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _publish(settings, records)
    print(f"published {records[0].key}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server  # noqa: PLC0415

    from streams.app import build  # noqa: PLC0415

    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    worker = build(settings)
    port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    start_http_server(port, addr="127.0.0.1" if args.metrics_loopback else "0.0.0.0")  # noqa: S104
    print(f"worker up: consuming {worker.topics.usage}, metrics on :{port}/metrics", flush=True)
    sys.argv = [sys.argv[0], "worker"]
    return worker.run()


def cmd_rebuild(args: argparse.Namespace) -> int:
    from streams.rebuild import rebuild  # noqa: PLC0415

    settings = _settings()
    report = rebuild(settings, progress=lambda line: print(f"  {line}", file=sys.stderr))
    print(
        f"rebuilt {report.counters} counters and {report.budgets} budgets for {report.orgs} orgs, "
        f"{report.fingerprints} fingerprints in the duplicate window"
    )
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from bus.config_topic import config_state  # noqa: PLC0415
    from bus.topics import Topics  # noqa: PLC0415
    from enforcement.keys import KeyLayout  # noqa: PLC0415
    from enforcement.redis_clients import sync_redis  # noqa: PLC0415
    from schemas.money import format_usd  # noqa: PLC0415
    from sinks.usage_store import UsageStore  # noqa: PLC0415
    from streams.drift import measure_drift, org_zones  # noqa: PLC0415

    settings = _settings()
    state = config_state(
        settings.kafka.bootstrap,
        Topics(settings.kafka.topic_prefix).config,
        on_error=lambda exc: print(f"warning: config.v1: {exc} (skipped, as the worker does)", file=sys.stderr),
    )
    store = UsageStore.of(settings.clickhouse)
    client = sync_redis(settings.redis)
    drift = measure_drift(client, store, KeyLayout(settings.redis.key_prefix), org_zones(store, state))
    for org_id, nanos in drift.items():
        print(f"{org_id:<30} {nanos:>20,} nano-USD ({format_usd(nanos, 6)})")
    return 0 if all(v == 0 for v in drift.values()) else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415

    from bus.topics import Topics  # noqa: PLC0415
    from bus.usage_producer import UsageProducer  # noqa: PLC0415
    from workloads.generators import synthetic, trace_events  # noqa: PLC0415

    settings = _settings()
    topics = Topics(settings.kafka.topic_prefix)
    from bus.topic_admin import ensure_topics  # noqa: PLC0415

    ensure_topics(settings.kafka.bootstrap, topics)
    if args.source == "trace":
        trace = Path(args.trace)
        if not trace.exists():
            print(f"error: no trace at {trace}", file=sys.stderr)
            return 2
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1) if args.now else None
        events = trace_events(
            trace.read_text(), args.count, seed=args.seed, start=start, speedup=args.speedup, prefix=args.prefix
        )
    else:
        begin = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=args.days - 1)
        events = synthetic(args.days, args.count // max(args.days, 1), begin, seed=args.seed, prefix=args.prefix)
    print(
        f"replaying {args.count:,} {args.source} events to {topics.usage}"
        + (f" at {args.rate:,.0f}/s" if args.rate else ""),
        file=sys.stderr,
    )
    sent = UsageProducer(settings.kafka.bootstrap, topics.usage, compression=settings.kafka.compression).replay(
        events, args.count, args.rate, progress=not args.quiet
    )
    print(f"sent {sent:,} events")
    return 0


def cmd_decision(args: argparse.Namespace) -> int:
    from admin.decision_service import app_from_settings, new_key_entry  # noqa: PLC0415
    from enforcement.access import KeyFileError  # noqa: PLC0415

    if args.action == "new-key":
        print(new_key_entry(args.name, args.org or ["*"], args.right or ["reserve", "release", "usage", "spend"]))
        return 0
    import uvicorn  # noqa: PLC0415 - only this command needs it

    settings = _settings()
    try:
        app = app_from_settings(settings)
    except KeyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    port = args.port or settings.decision.port
    # What is built by now lives as long as the service: out of the collector's reach, a full collection
    # no longer walks it in the middle of a request (the worker does the same, streams/app.py).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=settings.decision.host, port=port, log_level="warning", access_log=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spendstream",
        description="Meter, cap and forecast what an organisation spends on LLMs. "
        "Settings come from SPENDSTREAM_* environment variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    stack_parser(commands)
    budgets = commands.add_parser(
        "budgets",
        help="publish a budgets file (orgs, budgets, alert channels, routing) to config.v1, or list the budgets",
        description="apply publishes the file's orgs, budgets, alert channels and routing to config.v1 and "
        "deletes what the file no longer lists for its orgs; list shows the budgets on the topic. "
        "Channel secrets may be written env:NAME: the worker reads them from its environment.",
    )
    budgets.add_argument("action", choices=["apply", "list"])
    budgets.add_argument(
        "file", nargs="?", type=argparse.FileType("r"), help="budgets YAML (for apply; format: schemas/budget_file.py)"
    )
    budgets.add_argument("--org", help="list only this org")
    budgets.set_defaults(func=cmd_budgets)
    prices = commands.add_parser("prices", help="publish prices to config.v1")
    prices.add_argument("action", choices=["import"])
    prices.add_argument("--litellm", type=argparse.FileType("r"), help="LiteLLM model_prices_and_context_window.json")
    prices.add_argument(
        "--effective-from",
        help="ISO 8601 with zone (for --litellm); default 1970-01-01T00:00:00Z, so every event is priced by it",
    )
    prices.add_argument("--overrides", type=argparse.FileType("r"), help="YAML overrides, discounts and policy")
    prices.set_defaults(func=cmd_prices)
    worker = commands.add_parser(
        "worker",
        help="run the stream worker (Faust) until stopped: usage, alert delivery, forecasts and spikes",
    )
    worker.add_argument("--metrics-port", type=int, help="overrides SPENDSTREAM_METRICS_PORT")
    worker.add_argument("--metrics-loopback", action="store_true", help="serve /metrics on 127.0.0.1 only")
    worker.set_defaults(func=cmd_worker)
    drift = commands.add_parser("drift", help="month-to-date spend per org: Redis minus ClickHouse (exit 1 if any)")
    drift.set_defaults(func=cmd_drift)
    rebuild = commands.add_parser("rebuild", help="recompute Redis from config.v1 and ClickHouse")
    rebuild.set_defaults(func=cmd_rebuild)
    replay = commands.add_parser("replay", help="produce a usage workload to usage.v1")
    replay.add_argument("source", choices=["trace", "synthetic"])
    replay.add_argument("--count", type=int, default=20_000, help="events to send (default 20,000)")
    replay.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    replay.add_argument("--trace", default=str(DEFAULT_TRACE), help="the LLM trace CSV (default: examples/trace)")
    replay.add_argument("--speedup", type=float, default=1.0, help="compress the trace's time by this factor")
    replay.add_argument("--now", action="store_true", help="shift the trace to the last hour (current periods)")
    replay.add_argument("--days", type=int, default=30, help="synthetic: days of history up to today")
    replay.add_argument("--seed", type=int, default=7)
    replay.add_argument("--prefix", default="replay", help="event_id prefix (a new prefix = new events)")
    replay.add_argument("--quiet", action="store_true", help="no progress bar")
    replay.set_defaults(func=cmd_replay)
    decision = commands.add_parser(
        "decision",
        help="the decision HTTP service for proxies, and its keys",
        description="serve: reserve, release, usage and spend over HTTP for the keys in "
        "SPENDSTREAM_DECISION__KEYS_FILE; new-key: make a key and print its keys-file entry (sha256 only)",
    )
    decision.add_argument("action", choices=["serve", "new-key"])
    decision.add_argument("--port", type=int, help="serve: overrides SPENDSTREAM_DECISION__PORT")
    decision.add_argument("--name", default="proxy", help="new-key: the key's name")
    decision.add_argument("--org", action="append", help="new-key: an org it acts for (repeat; default every org)")
    decision.add_argument(
        "--right",
        action="append",
        choices=["reserve", "release", "usage", "spend"],
        help="new-key: a right (repeat; default all)",
    )
    decision.set_defaults(func=cmd_decision)
    console_parser(commands)
    reports_parser(commands)
    demo = commands.add_parser(
        "demo",
        help="the main job: every feature on the local stack, fed by a sample workload; leaves the console running",
    )
    demo.add_argument("--count", type=int, default=20_000, help="requests to replay (default 20,000)")
    demo.add_argument("--trace", default=str(DEFAULT_TRACE), help="the LLM trace CSV (default: examples/trace)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
