"""``spendstream console``: serve the admin console, and create its users."""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from admin.environment import settings_from_env
from retries.policy import Retry
from schemas.settings import Settings

__all__ = ["console_parser", "start_console", "stop_console"]


def console_parser(commands: Any) -> None:
    console = commands.add_parser(
        "console",
        help="the admin console (Admin > Billing) and its admin API, and its users",
        description="serve: the console on SPENDSTREAM_CONSOLE__HOST:PORT (/billing, /api/v1), and its "
        "Prometheus metrics on SPENDSTREAM_CONSOLE__METRICS_PORT; "
        "create-user: a console user (the password from SPENDSTREAM_CONSOLE_PASSWORD, or asked for); "
        "stop: stop the console that `spendstream demo` left running",
    )
    console.add_argument("action", choices=["serve", "create-user", "stop"])
    console.add_argument("--port", type=int, help="serve: overrides SPENDSTREAM_CONSOLE__PORT")
    console.add_argument("--org", help="create-user: the user's org")
    console.add_argument("--username", help="create-user: the name they sign in with")
    console.add_argument(
        "--role", default="owner", choices=["owner", "admin", "finance", "manager", "viewer"], help="create-user"
    )
    console.add_argument("--department", action="append", help="create-user: a manager's department (repeat)")
    console.set_defaults(func=cmd_console)


def cmd_console(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    if args.action == "stop":
        print("stopped the console" if stop_console(settings) else "no console was running")
        return 0
    if args.action == "create-user":
        from console.access_store import AccessError  # noqa: PLC0415
        from console.serve import access_store  # noqa: PLC0415

        if not args.org or not args.username:
            print("error: create-user needs --org and --username", file=sys.stderr)
            return 2
        password = os.environ.get("SPENDSTREAM_CONSOLE_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
        departments = tuple(d for d in (args.department or []) if d)
        try:
            access_store(settings).create_user(args.org, args.username, password, args.role, departments)
        except AccessError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"created {args.role} {args.username} of org {args.org}")
        return 0
    import uvicorn  # noqa: PLC0415 - only this command needs it
    from prometheus_client import start_http_server  # noqa: PLC0415

    from console.serve import app_from_settings as console_app  # noqa: PLC0415

    app = console_app(settings)
    console = settings.console
    if console.metrics_port:  # its own port, never the console's: /metrics is not for the console's users
        start_http_server(console.metrics_port, addr=console.host)
    port = args.port or console.port
    trusted = [part.strip() for part in console.trusted_proxies.split(",") if part.strip()]
    print(f"console: http://{console.host}:{port}/billing", file=sys.stderr)
    cookie = "Secure" if console.cookies_secure() else "not Secure (served on loopback over plain HTTP)"
    metrics = f"{console.host}:{console.metrics_port}/metrics" if console.metrics_port else "off"
    proxies = ", ".join(trusted) if trusted else "no proxy"
    print(f"console: session cookie {cookie}; X-Forwarded-* trusted from {proxies}; metrics {metrics}", file=sys.stderr)
    uvicorn.run(
        app,
        host=console.host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
    )
    return 0


def _pid_file(settings: Settings) -> Path:
    return Path(settings.stack.home) / "console.pid"


def stop_console(settings: Settings) -> bool:
    """Stop the console a demo started (its pid file); whether one was running."""
    pid_file = _pid_file(settings)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    pid_file.unlink(missing_ok=True)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def start_console(settings: Settings, username: str, password: str, org: str) -> str:
    """Start ``spendstream console serve`` in the background (replacing one a demo started before), with a
    sign-in for ``username`` when there is none yet; returns its URL once it answers."""
    from console.access_store import AccessError  # noqa: PLC0415
    from console.serve import access_store  # noqa: PLC0415

    try:
        access_store(settings).create_user(org, username, password, "owner")
    except AccessError as exc:
        if exc.field != "username":  # it exists already: keep it, with whatever password it has now
            raise
    stop_console(settings)
    home = Path(settings.stack.home)
    with (home / "console.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "admin.cli", "console", "serve"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # it outlives the command that started it
        )
    _pid_file(settings).write_text(str(proc.pid))
    url = f"http://{settings.console.host}:{settings.console.port}"

    def answers() -> None:
        with urllib.request.urlopen(url + "/healthz", timeout=1):  # noqa: S310 - our own loopback URL
            return

    patience = Retry((OSError,), base_s=0.2, max_s=0.2, attempts=300, stop=lambda: proc.poll() is not None)
    try:
        patience.call(answers)
    except OSError:
        raise SystemExit(f"error: the console did not start; see {home / 'console.log'}") from None
    return url
