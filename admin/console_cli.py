"""``spendstream console``: serve the admin console, and create its users."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from admin.environment import settings_from_env

__all__ = ["console_parser"]


def console_parser(commands: Any) -> None:
    console = commands.add_parser(
        "console",
        help="the admin console (Admin > Billing) and its admin API, and its users",
        description="serve: the console on SPENDSTREAM_CONSOLE__HOST:PORT (/billing, /api/v1, /metrics); "
        "create-user: a console user (the password from SPENDSTREAM_CONSOLE_PASSWORD, or asked for)",
    )
    console.add_argument("action", choices=["serve", "create-user"])
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
    if args.action == "create-user":
        from console.serve import access_store  # noqa: PLC0415
        from console.store import AccessError  # noqa: PLC0415

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
    from prometheus_client import make_asgi_app  # noqa: PLC0415
    from starlette.routing import Mount  # noqa: PLC0415

    from console.serve import app_from_settings as console_app  # noqa: PLC0415

    app = console_app(settings)
    app.router.routes.append(Mount("/metrics", make_asgi_app()))
    port = args.port or settings.console.port
    print(f"console: http://{settings.console.host}:{port}/billing", file=sys.stderr)
    uvicorn.run(app, host=settings.console.host, port=port, log_level="warning", access_log=False)
    return 0
