"""Settings from the environment for the operator's commands, with errors that name the variable."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from schemas.settings import Settings

__all__ = ["settings_from_env", "warn_refused"]


def settings_from_env() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"  SPENDSTREAM_{'__'.join(str(p).upper() for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SystemExit("invalid settings in the environment:\n" + "\n".join(lines)) from None


def warn_refused(exc: ValueError) -> None:
    """A config record the state refuses (the worker refuses it too): said on stderr, and skipped."""
    print(f"warning: {exc}", file=sys.stderr)  # noqa: T201 - the operator's terminal
