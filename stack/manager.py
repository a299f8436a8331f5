"""``spendstream stack up | down | status``: the local services as one unit."""

from __future__ import annotations

import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from schemas.settings import StackSettings
from stack.services import Service, ServiceStatus, all_services, other_kafka, stale_reason

__all__ = ["StartReport", "all_services", "chosen", "down", "status", "up"]


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


def _named(service: Service, names: Collection[str]) -> bool:
    """``kafka`` names every Kafka node (``kafka-1`` .. ``kafka-3`` too)."""
    return service.name in names or service.name.split("-")[0] in names


def chosen(settings: StackSettings, names: Collection[str] | None) -> list[Service]:
    """The services ``names`` select (every one when None); ValueError names what no service is called."""
    services = all_services(settings)
    if names:
        unknown = set(names) - {s.name.split("-")[0] for s in services} - {s.name for s in services}
        if unknown:
            raise ValueError(f"no service named {', '.join(sorted(unknown))}; the services: redis, clickhouse, kafka")
        services = [s for s in services if _named(s, names)]
    return services


def _running_others(settings: StackSettings, names: Collection[str] | None) -> list[Service]:
    """Kafka nodes of the other layout (one broker against three) that still run."""
    if names and "kafka" not in names:
        return []
    return [s for s in other_kafka(settings) if s.proc.pid() is not None]


def up(settings: StackSettings, names: Collection[str] | None = None) -> list[StartReport]:
    """Start whatever is not running, all at once; idempotent. A service that runs other code or settings
    than this installation's (started by another checkout, or by an interpreter since deleted) is restarted
    on its data. ``names`` limits it to those services. Kafka nodes of the other layout (one broker against
    three) are stopped first: each layout keeps its own data. Raises StartError on failure."""
    services = chosen(settings, names)
    for service in _running_others(settings, names):
        service.stop()
    for service in services:
        service.install()  # one at a time: apt and Maven do not like company
    with ThreadPoolExecutor(max_workers=len(services)) as pool:  # a cluster's nodes must start together
        return list(pool.map(_start, services))


def down(settings: StackSettings, names: Collection[str] | None = None) -> list[tuple[str, bool]]:
    """Stop what ``up`` started, and the other layout's Kafka nodes, all at once."""
    stopping = [*_running_others(settings, names), *reversed(chosen(settings, names))]
    with ThreadPoolExecutor(max_workers=max(1, len(stopping))) as pool:  # a cluster's nodes stop together, in quorum
        return list(zip([s.name for s in stopping], pool.map(lambda service: service.stop(), stopping), strict=True))


def status(settings: StackSettings, names: Collection[str] | None = None) -> list[ServiceStatus]:
    return [service.status() for service in [*chosen(settings, names), *_running_others(settings, names)]]
