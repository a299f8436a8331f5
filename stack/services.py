"""The three local services: Kafka (KRaft, combined mode), Redis and the embedded ClickHouse.

Each service knows how to install what it needs, start, tell whether it is
ready, and stop. Ports and folders come from :class:`StackSettings`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from schemas.settings import StackSettings
from stack.process import ManagedProcess, Owner, StartError

__all__ = [
    "ClickHouseService",
    "KafkaService",
    "RedisService",
    "Service",
    "ServiceStatus",
    "all_services",
    "installation",
    "stale_reason",
]

POM = Path(__file__).with_name("kafka") / "pom.xml"
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


def _owner(*parts: object, interpreter: str = "") -> Owner:
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


def _status(service: Service, address: str, data: Path, log: Path) -> ServiceStatus:
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


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _refuse_busy_port(name: str, port: int) -> None:
    if _port_open(port):
        raise StartError(
            f"{name}: port {port} is taken by a process this stack did not start; "
            f"stop it or choose another port in the settings"
        )


class KafkaService:
    """Apache Kafka 4.0 from Maven Central, one node in combined broker+controller KRaft mode."""

    name = "kafka"

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = settings.home / "kafka"
        self.libs = settings.cache / f"kafka-{settings.kafka_version}" / "libs"
        self.config = self.home / "server.properties"
        self.log4j = self.home / "log4j2.xml"
        self.data = self.home / "data"
        self.server_log = self.home / "logs" / "server.log"
        self.proc = ManagedProcess(
            "kafka", self.home / "kafka.pid", self.home / "logs" / "stdout.log", str(self.config)
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_port}"

    def install(self) -> None:
        """Resolve the broker and its runtime class path into the cache (once)."""
        done = self.libs.parent / ".complete"
        if done.exists():
            return
        if shutil.which("mvn") is None or shutil.which("java") is None:
            raise StartError("kafka: needs java 17+ and mvn on PATH to fetch the broker from Maven Central")
        self.libs.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={self.libs}",
                f"-Dkafka.version={self.settings.kafka_version}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not any(self.libs.glob("kafka_2.13-*.jar")):
            raise StartError(
                f"kafka: resolving the jars with Maven failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        done.write_text(self.settings.kafka_version + "\n")

    def _server_properties(self) -> str:
        s = self.settings
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{s.kafka_controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{s.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.data}",
                "num.partitions=4",
                # One node: internal topics must not wait for replicas that never come.
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                # A restarted node re-registers quickly instead of waiting out its old session.
                "broker.session.timeout.ms=3000",
                "broker.heartbeat.interval.ms=500",
                "auto.create.topics.enable=true",
                "log.retention.hours=168",
                "",
            ]
        )

    def _log4j(self) -> str:
        logs = self.server_log.parent
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="{self.server_log}" filePattern="{logs}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="50 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.controller" level="INFO"/>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
  </Loggers>
</Configuration>
"""

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self._server_properties())
        self.server_log.parent.mkdir(parents=True, exist_ok=True)
        self.log4j.write_text(self._log4j())

    def _argv(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.config), heap=self.settings.kafka_heap)

    def wanted_owner(self) -> Owner:
        return _owner(shutil.which("java"), self.settings.kafka_version, self._server_properties(), self._argv())

    def _java(self, main: str, *args: str, heap: str | None = None) -> list[str]:
        argv = ["java"]
        if heap:
            argv += [f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
        argv += [
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j}",
            f"-Dkafka.logs.dir={self.server_log.parent}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]
        return argv

    def _format(self) -> None:
        if (self.data / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config)),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StartError(f"kafka: formatting the storage failed:\n{result.stdout}{result.stderr}")

    def start(self) -> bool:
        if self.proc.pid() is not None:
            return False
        _refuse_busy_port(self.name, self.settings.kafka_port)
        self.install()
        self._write_config()
        self._format()
        child = self.proc.start(self._argv(), owner=self.wanted_owner())
        self.proc.wait_until(child, self.ready, self.settings.start_timeout_s, log_hint=self.server_log)
        return True

    def ready(self) -> bool:
        """A metadata request answers with this broker in it."""
        if not _port_open(self.settings.kafka_port):
            return False
        from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - only the stack checks Kafka

        try:
            metadata = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0}).list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - not ready yet, whatever the client says
            return False
        return bool(metadata.brokers)

    def stop(self) -> bool:
        return self.proc.stop(timeout_s=30)

    def status(self) -> ServiceStatus:
        return _status(self, self.bootstrap, self.data, self.server_log)


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
        return _owner(shutil.which("redis-server"), self._argv())

    def start(self) -> bool:
        if self.proc.pid() is not None:
            return False
        _refuse_busy_port(self.name, self.settings.redis_port)
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
        return _status(self, f"redis://127.0.0.1:{self.settings.redis_port}/0", self.home, self.log)


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
        return _owner(sys.executable, chdb, *sources, self._argv(), interpreter=sys.executable)

    def start(self) -> bool:
        if self.proc.pid() is not None:
            return False
        _refuse_busy_port(self.name, self.settings.clickhouse_port)
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
        return _status(self, f"http://127.0.0.1:{self.settings.clickhouse_port}", self.data, self.log)


def all_services(settings: StackSettings) -> list[Service]:
    return [RedisService(settings), ClickHouseService(settings), KafkaService(settings)]
