"""Kafka 4.0 in KRaft combined mode, fetched from Maven Central: one broker that is its own controller, or a
cluster of three such nodes on this machine (``stack.kafka_brokers``), each a service of its own."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from schemas.settings import StackSettings
from stack.process import ManagedProcess, Owner, StartError
from stack.service import ServiceStatus, owner_of, port_open, refuse_busy_port, status_of

__all__ = ["KafkaService", "bootstrap_of", "kafka_nodes"]

POM = Path(__file__).with_name("kafka") / "pom.xml"  # fetches the broker's jars from Maven Central


class KafkaService:
    """Apache Kafka 4.0 from Maven Central, one node in combined broker+controller KRaft mode: the only one
    (``nodes`` 1, service ``kafka``), or node ``node`` of a cluster of ``nodes`` (service ``kafka-<node>``)."""

    def __init__(self, settings: StackSettings, node: int = 1, nodes: int = 1) -> None:
        self.settings = settings
        self.node = node
        self.nodes = nodes
        self.name = "kafka" if nodes == 1 else f"kafka-{node}"
        self.home = settings.home / "kafka" if nodes == 1 else settings.home / "kafka-cluster" / f"node-{node}"
        self.port = settings.kafka_port + 2 * (node - 1)
        self.controller_port = settings.kafka_controller_port + 2 * (node - 1)
        self.libs = settings.cache / f"kafka-{settings.kafka_version}" / "libs"
        self.config = self.home / "server.properties"
        self.log4j = self.home / "log4j2.xml"
        self.data = self.home / "data"
        self.server_log = self.home / "logs" / "server.log"
        self.proc = ManagedProcess(
            self.name, self.home / "kafka.pid", self.home / "logs" / "stdout.log", str(self.config)
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

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
        voters = ",".join(f"{i}@127.0.0.1:{s.kafka_controller_port + 2 * (i - 1)}" for i in range(1, self.nodes + 1))
        replicas = min(3, self.nodes)  # every topic on three nodes when there are three
        min_isr = 2 if replicas == 3 else 1  # an acknowledged write is on two nodes: one may die
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.data}",
                "num.partitions=4",
                # one node: no topic may wait for replicas that never come (the broker's defaults are 1)
                *([f"default.replication.factor={replicas}", f"min.insync.replicas={min_isr}"] if replicas > 1 else []),
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=8",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={min_isr}",
                f"share.coordinator.state.topic.replication.factor={replicas}",
                f"share.coordinator.state.topic.min.isr={min_isr}",
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
        return owner_of(shutil.which("java"), self.settings.kafka_version, self._server_properties(), self._argv())

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

    def _cluster_id(self) -> str:
        """One id for every node of a cluster (kept beside the nodes' folders), a new one for a lone node."""
        made = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if self.nodes == 1:
            return made
        path = self.home.parent / "cluster.id"
        path.parent.mkdir(parents=True, exist_ok=True)
        mine = path.with_name(f"cluster.id.{self.node}")
        mine.write_text(made)
        with contextlib.suppress(FileExistsError):  # the nodes start side by side: the first one linked decides
            os.link(mine, path)
        mine.unlink()
        return path.read_text().strip()

    def _format(self) -> None:
        if (self.data / "meta.properties").exists():
            return
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", self._cluster_id(), "-c", str(self.config)),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StartError(f"{self.name}: formatting the storage failed:\n{result.stdout}{result.stderr}")

    def start(self) -> bool:
        if self.proc.pid() is not None:
            return False
        refuse_busy_port(self.name, self.port)
        self.install()
        self._write_config()
        self._format()
        child = self.proc.start(self._argv(), owner=self.wanted_owner())
        self.proc.wait_until(child, self.ready, self.settings.start_timeout_s, log_hint=self.server_log)
        return True

    def ready(self) -> bool:
        """A metadata request to this node answers with this node in it."""
        if not port_open(self.port):
            return False
        from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - only the stack checks Kafka

        try:
            metadata = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0}).list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - not ready yet, whatever the client says
            return False
        return self.node in metadata.brokers

    def stop(self) -> bool:
        return self.proc.stop(timeout_s=30)

    def status(self) -> ServiceStatus:
        return status_of(self, self.bootstrap, self.data, self.server_log)


def kafka_nodes(settings: StackSettings, nodes: int | None = None) -> list[KafkaService]:
    """The Kafka services of ``nodes`` brokers (default: the settings' ``kafka_brokers``)."""
    count = settings.kafka_brokers if nodes is None else nodes
    return [KafkaService(settings, node, count) for node in range(1, count + 1)]


def bootstrap_of(settings: StackSettings) -> str:
    """The bootstrap list of the settings' brokers, for ``SPENDSTREAM_KAFKA__BOOTSTRAP``."""
    return ",".join(node.bootstrap for node in kafka_nodes(settings))
