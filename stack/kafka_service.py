"""Kafka 4.0 in KRaft combined mode (one broker that is its own controller), fetched from Maven Central."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from schemas.settings import StackSettings
from stack.process import ManagedProcess, Owner, StartError
from stack.service import ServiceStatus, owner_of, port_open, refuse_busy_port, status_of

__all__ = ["KafkaService"]

POM = Path(__file__).with_name("kafka") / "pom.xml"  # fetches the broker's jars from Maven Central


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
        refuse_busy_port(self.name, self.settings.kafka_port)
        self.install()
        self._write_config()
        self._format()
        child = self.proc.start(self._argv(), owner=self.wanted_owner())
        self.proc.wait_until(child, self.ready, self.settings.start_timeout_s, log_hint=self.server_log)
        return True

    def ready(self) -> bool:
        """A metadata request answers with this broker in it."""
        if not port_open(self.settings.kafka_port):
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
        return status_of(self, self.bootstrap, self.data, self.server_log)
