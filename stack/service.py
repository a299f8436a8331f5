"""What every local service shares: who started it, its status, whether its port is free.

A service records an :class:`~stack.process.Owner` (this installation, its version, and a digest of what
decides its behaviour) when it starts; a running process whose owner differs is stale and is restarted.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from stack.process import ManagedProcess, Owner, StartError

__all__ = [
    "ROOT",
    "Service",
    "ServiceStatus",
    "installation",
    "owner_of",
    "port_open",
    "refuse_busy_port",
    "stale_reason",
    "status_of",
]

ROOT = Path(__file__).resolve().parents[1]


def installation() -> tuple[str, str]:
    """(where this spendstream is installed, its version and the checkout's commit when it is one)."""
    try:
        version = importlib.metadata.version("spendstream")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    head = ROOT / ".git" / "HEAD"
    commit = ""
    with contextlib.suppress(OSError):
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref_path = ROOT / ".git" / ref[5:]
            commit = ref_path.read_text().strip() if ref_path.exists() else ""
        else:
            commit = ref
    return str(ROOT), f"{version} {commit[:12]}".strip()


def owner_of(*parts: object, interpreter: str = "") -> Owner:
    """The owner this installation would record for a process whose behaviour ``parts`` decide."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else repr(part).encode())
        digest.update(b"\0")
    root, version = installation()
    return Owner(root, version, digest.hexdigest()[:16], interpreter)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    ready: bool
    pid: int | None
    address: str
    data: Path
    log: Path
    owner: Owner | None = None  # what started the running process
    stale: str | None = None  # why it does not run this installation's code, when it does not


class Service(Protocol):
    name: str
    proc: ManagedProcess

    def install(self) -> None: ...
    def start(self) -> bool: ...
    def ready(self) -> bool: ...
    def stop(self) -> bool: ...
    def status(self) -> ServiceStatus: ...
    def wanted_owner(self) -> Owner: ...


def stale_reason(service: Service) -> str | None:
    """Why the running process must not serve this installation (None when none runs, or it may)."""
    if service.proc.pid() is None:
        return None
    recorded = service.proc.owner()
    if recorded is None:
        return "its pid file does not say what started it (an older spendstream)"
    return recorded.stale_against(service.wanted_owner())


def status_of(service: Service, address: str, data: Path, log: Path) -> ServiceStatus:
    pid = service.proc.pid()
    stale = stale_reason(service)
    return ServiceStatus(
        service.name,
        pid is not None,
        pid is not None and stale is None and service.ready(),
        pid,
        address,
        data,
        log,
        service.proc.owner() if pid is not None else None,
        stale,
    )


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def refuse_busy_port(name: str, port: int) -> None:
    if port_open(port):
        raise StartError(
            f"{name}: port {port} is taken by a process this stack did not start; "
            f"stop it or choose another port in the settings"
        )
