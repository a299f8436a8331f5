"""Settings from the environment for the operator's commands, with errors that name the variable."""

from __future__ import annotations

from pydantic import ValidationError

from schemas.settings import Settings

__all__ = ["settings_from_env"]


def settings_from_env() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"  SPENDSTREAM_{'__'.join(str(p).upper() for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SystemExit("invalid settings in the environment:\n" + "\n".join(lines)) from None
