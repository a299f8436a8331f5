"""One broker or three (``stack.kafka_brokers``): each node's ports, folder and settings, the names that select
them, and the other layout's running broker stopped by ``down`` and shown by ``status`` (no JVM starts here)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas.settings import StackSettings
from stack import manager
from stack.kafka_service import KafkaService, bootstrap_of, kafka_nodes
from stack.services import all_services


def properties(service: KafkaService) -> dict[str, str]:
    lines = service._server_properties().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_three_nodes_are_a_quorum_each_with_its_ports_and_folder(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path, kafka_brokers=3, kafka_port=19092, kafka_controller_port=19093)
    nodes = kafka_nodes(settings)
    assert [n.name for n in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [n.port for n in nodes] == [19092, 19094, 19096]
    assert bootstrap_of(settings) == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert len({n.home for n in nodes}) == 3 and all(n.home.parent == tmp_path / "kafka-cluster" for n in nodes)
    second = properties(nodes[1])
    assert second["node.id"] == "2"
    assert second["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    assert second["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert (second["default.replication.factor"], second["min.insync.replicas"]) == ("3", "2")
    assert (second["offsets.topic.replication.factor"], second["transaction.state.log.min.isr"]) == ("3", "2")


def test_one_node_keeps_its_folder_and_the_brokers_defaults(tmp_path: Path) -> None:
    [lone] = kafka_nodes(StackSettings(home=tmp_path))
    assert (lone.name, lone.home, lone.port) == ("kafka", tmp_path / "kafka", 9092)
    lone_properties = properties(lone)
    assert "default.replication.factor" not in lone_properties and "min.insync.replicas" not in lone_properties
    assert lone_properties["offsets.topic.replication.factor"] == "1"


def test_the_nodes_of_one_cluster_share_one_cluster_id(tmp_path: Path) -> None:
    nodes = kafka_nodes(StackSettings(home=tmp_path, kafka_brokers=3))
    ids = {node._cluster_id() for node in nodes}
    assert len(ids) == 1 and len(ids.pop()) == 22  # a base64 UUID without padding, as Kafka's own tool makes


def test_kafka_names_every_node_and_a_node_names_itself(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path, kafka_brokers=3, kafka_port=19192, kafka_controller_port=19193)
    assert [s.name for s in all_services(settings)] == ["redis", "clickhouse", "kafka-1", "kafka-2", "kafka-3"]
    assert [row.name for row in manager.status(settings, ["kafka"])] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [row.name for row in manager.status(settings, ["kafka-2"])] == ["kafka-2"]
    with pytest.raises(ValueError, match="no service named zookeeper"):
        manager.status(settings, ["zookeeper"])


def test_the_other_layouts_running_broker_is_shown_and_stopped(tmp_path: Path) -> None:
    """A lone broker an earlier ``stack up`` started holds the first port: three nodes stop it first."""
    three = StackSettings(home=tmp_path, kafka_brokers=3, kafka_port=19292, kafka_controller_port=19293)
    lone = KafkaService(three.model_copy(update={"kafka_brokers": 1}))
    lone.home.mkdir(parents=True)
    # a stand-in process whose command line names the lone broker's configuration, as the broker's does
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(lone.config)])
    try:
        lone.proc.pid_file.write_text(f"{stand_in.pid}\n")
        deadline = time.monotonic() + 10
        while lone.proc.pid() != stand_in.pid and time.monotonic() < deadline:  # until its command line shows
            lone.proc.pid_file.write_text(f"{stand_in.pid}\n")  # pid() removes a pid file it cannot match
            time.sleep(0.05)
        assert lone.proc.pid() == stand_in.pid
        assert [row.name for row in manager.status(three, ["kafka"])] == ["kafka-1", "kafka-2", "kafka-3", "kafka"]
        stopped = dict(manager.down(three, ["kafka"]))
        assert stopped["kafka"] is True and stand_in.wait(10) is not None
        assert [row.name for row in manager.status(three, ["kafka"])] == ["kafka-1", "kafka-2", "kafka-3"]
    finally:
        stand_in.kill()
        stand_in.wait()
