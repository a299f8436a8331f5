"""The local services: Kafka (KRaft, combined mode: one broker or three), Redis and the embedded ClickHouse.

Each service knows how to install what it needs, start, tell whether it is
ready, and stop. Ports and folders come from :class:`StackSettings`.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import urllib.request

from schemas.settings import StackSettings
from stack.kafka_service import KafkaService, kafka_nodes
from stack.process import ManagedProcess, Owner, StartError
from stack.service import (
    ROOT,
    Service,
    ServiceStatus,
    installation,
    owner_of,
    refuse_busy_port,
    stale_reason,
    status_of,
)

__all__ = [
    "ClickHouseService",
    "KafkaService",
    "RedisService",
    "Service",
    "ServiceStatus",
    "all_services",
    "installation",
    "other_kafka",
    "stale_reason",
]


class RedisService:
    """``redis-server`` from Debian's packages, on loopback, with an append-only file in its data folder
    (``appendfsync everysec``): a restart keeps the caps' state. What a crash can lose (the last second)
    the worker restores by itself from config.v1 and ClickHouse."""

    name = "redis"

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = settings.home / "redis"
        self.log = self.home / "redis.log"
        self.proc = ManagedProcess("redis", self.home / "redis.pid", self.log, "redis-server")

    def install(self) -> None:
        if shutil.which("redis-server"):
            return
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise StartError("redis: redis-server is missing; install Debian's redis-server package")
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
            if result.returncode != 0:
                raise StartError(f"redis: {' '.join(argv)} failed:\n{result.stderr[-2000:]}")

    def _argv(self) -> list[str]:
        return [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.settings.redis_port),
            "--dir",
            str(self.home),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            # The duplicate window keeps ~440 fingerprints per hash at 1,000 events/s: keep them compact.
            "--hash-max-listpack-entries",
            "512",
            "--maxclients",
            "10000",
        ]

    def wanted_owner(self) -> Owner:
        return owner_of(shutil.which("redis-server"), self._argv())

    def start(self) -> bool:
        if self.proc.pid() is not None:
            return False
        refuse_busy_port(self.name, self.settings.redis_port)
        self.install()
        self.home.mkdir(parents=True, exist_ok=True)
        child = self.proc.start(self._argv(), owner=self.wanted_owner())
        self.proc.wait_until(child, self.ready, self.settings.start_timeout_s)
        return True

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.settings.redis_port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> bool:
        return self.proc.stop(timeout_s=10)

    def status(self) -> ServiceStatus:
        return status_of(self, f"redis://127.0.0.1:{self.settings.redis_port}/0", self.home, self.log)


class ClickHouseService:
    """The embedded ClickHouse (:mod:`stack.clickhouse_server`): chdb behind the HTTP interface."""

    name = "clickhouse"

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = settings.home / "clickhouse"
        self.data = self.home / "data"
        self.log = self.home / "server.log"
        self.proc = ManagedProcess("clickhouse", self.home / "clickhouse.pid", self.log, "stack.clickhouse_server")

    def install(self) -> None:
        """chdb is a Python dependency: nothing to fetch."""

    def _argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "stack.clickhouse_server",
            "--port",
            str(self.settings.clickhouse_port),
            "--data",
            str(self.data),
        ]

    def wanted_owner(self) -> Owner:
        """This interpreter (and so its packages), chdb's version, and the server's own source."""
        sources = [(ROOT / "stack" / name).read_bytes() for name in ("clickhouse_server.py", "chhttp.py")]
        chdb = importlib.metadata.version("chdb")
        return owner_of(sys.executable, chdb, *sources, self._argv(), interpreter=sys.executable)

    def start(self) -> bool:
        if self.proc.pid() is not None:
            return False
        refuse_busy_port(self.name, self.settings.clickhouse_port)
        child = self.proc.start(
            self._argv(),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,  # python -m imports from the cwd first: this installation's stack, not the caller's
            owner=self.wanted_owner(),
        )
        self.proc.wait_until(child, self.ready, self.settings.start_timeout_s)
        return True

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.settings.clickhouse_port}/ping"
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.read() == b"Ok.\n")
        except OSError:
            return False

    def stop(self) -> bool:
        return self.proc.stop(timeout_s=20)

    def status(self) -> ServiceStatus:
        return status_of(self, f"http://127.0.0.1:{self.settings.clickhouse_port}", self.data, self.log)


def all_services(settings: StackSettings) -> list[Service]:
    """Redis, ClickHouse and the settings' Kafka broker(s): ``kafka``, or ``kafka-1`` .. ``kafka-3``."""
    return [RedisService(settings), ClickHouseService(settings), *kafka_nodes(settings)]


def other_kafka(settings: StackSettings) -> list[Service]:
    """The Kafka nodes of the layout the settings do not choose (one broker against three): started by an
    earlier ``stack up``, they hold the same first port, so they stop before these start."""
    return [*kafka_nodes(settings, 1 if settings.kafka_brokers == 3 else 3)]
