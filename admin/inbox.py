"""The demo's local mail inbox: an SMTP server on the loopback that keeps each message it is given as an
``.eml`` file, so that the alerts the main job raises are really delivered somewhere you can read."""

from __future__ import annotations

import socket
import time
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["Inbox"]


class _Handler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.received += 1
        name = f"{time.time():.6f}-{self.received:05d}.eml"
        (self.folder / name).write_bytes(envelope.content)
        return "250 Message accepted for delivery"


class Inbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._handler = _Handler(folder)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> Inbox:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    @property
    def received(self) -> int:
        return self._handler.received

    def subjects(self, limit: int = 5) -> list[str]:
        """The newest messages' subjects."""
        newest = sorted(self.folder.glob("*.eml"))[-limit:]
        return [str(message_from_bytes(p.read_bytes(), policy=default)["subject"]).strip() for p in reversed(newest)]
