"""``spendstream stack up | down | status``: the local services as one unit."""

from __future__ import annotations

import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from schemas.settings import StackSettings
from stack.services import Service, ServiceStatus, all_services, stale_reason

__all__ = ["StartReport", "all_services", "down", "status", "up"]


@dataclass(frozen=True)
class StartReport:
    name: str
    started: bool  # False: it was already running
    seconds: float
    restarted: str | None = None  # why a running process was replaced: it ran another installation's code


def _start(service: Service) -> StartReport:
    began = time.perf_counter()
    stale = stale_reason(service)
    if stale is not None:
        service.stop()  # its data stays: the new process starts on the same folder
    started = service.start()
    return StartReport(service.name, started, time.perf_counter() - began, stale)


def _chosen(settings: StackSettings, names: Collection[str] | None) -> list[Service]:
    services = all_services(settings)
    if names:
        unknown = set(names) - {s.name for s in services}
        if unknown:
            raise ValueError(f"no service named {', '.join(sorted(unknown))}; the services: redis, clickhouse, kafka")
        services = [s for s in services if s.name in names]
    return services


def up(settings: StackSettings, names: Collection[str] | None = None) -> list[StartReport]:
    """Start whatever is not running, all at once; idempotent. A service that runs other code or settings
    than this installation's (started by another checkout, or by an interpreter since deleted) is restarted
    on its data. ``names`` limits it to those services. Raises StartError on failure."""
    services = _chosen(settings, names)
    for service in services:
        service.install()  # one at a time: apt and Maven do not like company
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        return list(pool.map(_start, services))


def down(settings: StackSettings, names: Collection[str] | None = None) -> list[tuple[str, bool]]:
    """Stop what ``up`` started, Kafka first (it is the slowest to stop)."""
    return [(service.name, service.stop()) for service in reversed(_chosen(settings, names))]


def status(settings: StackSettings, names: Collection[str] | None = None) -> list[ServiceStatus]:
    return [service.status() for service in _chosen(settings, names)]
