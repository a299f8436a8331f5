"""Starting and stopping the local services' processes by pid file.

A pid file holds the pid, and a marker must appear in the process's command
line, so a pid reused by an unrelated process after a reboot is never
signalled. Its second line is the :class:`Owner`: which installation started
the process and a digest of the code and configuration it runs, so that a
checkout never mistakes a service started by another one (other code, other
settings, an interpreter since deleted) for its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ManagedProcess", "Owner", "StartError", "tail"]


class StartError(RuntimeError):
    """A service did not come up; the message carries the end of its log."""


def tail(path: Path, lines: int = 30) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Owner:
    """Who started a service process and what it runs.

    ``code`` is a digest of everything that decides the service's behaviour (its program, the
    interpreter and source files it runs, its arguments); two owners with the same ``code`` run the
    same service. ``interpreter`` is the Python that runs the service, when it runs Python."""

    root: str  # the installation (checkout) that started it
    version: str  # spendstream's version, and the checkout's commit when there is one
    code: str
    interpreter: str = ""

    def describe(self) -> str:
        return f"{self.root} ({self.version})"

    def stale_against(self, wanted: Owner) -> str | None:
        """Why a process of this owner must not serve a caller that wants ``wanted``; None when it may."""
        if self.interpreter and not Path(self.interpreter).exists():
            return f"its interpreter {self.interpreter} is gone"
        if self.code != wanted.code:
            return f"it runs other code or settings, started by {self.describe()}"
        return None

    def encode(self) -> str:
        return json.dumps(
            {"root": self.root, "version": self.version, "code": self.code, "interpreter": self.interpreter}
        )

    @classmethod
    def decode(cls, text: str) -> Owner | None:
        try:
            raw = json.loads(text)
            return cls(str(raw["root"]), str(raw["version"]), str(raw["code"]), str(raw.get("interpreter", "")))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    pid_file: Path
    log_file: Path
    marker: str  # text that identifies the process in /proc/<pid>/cmdline

    def pid(self) -> int | None:
        """The pid of the running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = ""
        stat = ""
        with contextlib.suppress(OSError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        if stat == "Z":
            _reap(pid)
        if self.marker not in cmdline or stat == "Z":
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def owner(self) -> Owner | None:
        """What the pid file says started the process (None for a pid file without it)."""
        try:
            lines = self.pid_file.read_text().splitlines()
        except FileNotFoundError:
            return None
        return Owner.decode(lines[1]) if len(lines) > 1 else None

    def start(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        owner: Owner | None = None,
    ) -> subprocess.Popen[bytes]:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the CLI that started it
                env=env,
                cwd=cwd,
            )
        self.pid_file.write_text(f"{proc.pid}\n" + (owner.encode() + "\n" if owner else ""))
        return proc

    def wait_until(
        self,
        proc: subprocess.Popen[bytes],
        ready: Callable[[], bool],
        timeout_s: float,
        log_hint: Path | None = None,
    ) -> None:
        """Wait for ``ready``; a process that exits first is reported with the end of its log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise StartError(
                    f"{self.name} exited during start-up; last lines of {log_hint or self.log_file}:\n"
                    + tail(log_hint or self.log_file)
                )
            if ready():
                return
            time.sleep(0.1)
        raise StartError(
            f"{self.name} not ready after {timeout_s:.0f} s; last lines of {log_hint or self.log_file}:\n"
            + tail(log_hint or self.log_file)
        )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout_s``. False when it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.killpg(pid, signal.SIGTERM) if _is_group_leader(pid) else os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.1)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def _reap(pid: int) -> None:
    """Collect a child that exited (when this process started it), so it is not a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
