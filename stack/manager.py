"""``spendstream stack up | down | status``: the local services as one unit."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from schemas.settings import StackSettings
from stack.services import Service, ServiceStatus, all_services

__all__ = ["StartReport", "all_services", "down", "status", "up"]


@dataclass(frozen=True)
class StartReport:
    name: str
    started: bool  # False: it was already running
    seconds: float


def _start(service: Service) -> StartReport:
    began = time.perf_counter()
    started = service.start()
    return StartReport(service.name, started, time.perf_counter() - began)


def up(settings: StackSettings) -> list[StartReport]:
    """Start whatever is not running, all at once; idempotent. Raises StartError on failure."""
    services = all_services(settings)
    for service in services:
        service.install()  # one at a time: apt and Maven do not like company
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        return list(pool.map(_start, services))


def down(settings: StackSettings) -> list[tuple[str, bool]]:
    """Stop what ``up`` started, Kafka first (it is the slowest to stop)."""
    return [(service.name, service.stop()) for service in reversed(all_services(settings))]


def status(settings: StackSettings) -> list[ServiceStatus]:
    return [service.status() for service in all_services(settings)]
