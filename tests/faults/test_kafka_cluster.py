"""Three Kafka brokers (``stack.kafka_brokers: 3``) on this machine, started here beside the shared stack:
every topic has three replicas and min.insync.replicas 2, and a steady replay loses and doubles nothing while
one broker is SIGKILLed, and then the leader of the busiest partition; caps hold throughout."""

from __future__ import annotations

import random
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from enforcement.client import CapClient
from schemas.settings import Settings, StackSettings
from stack import manager
from stack.kafka_service import bootstrap_of, kafka_nodes
from tests.deployment import Deployment, deployed, make_events
from tests.faults.conftest import Faulty, faulty_on, kill
from tests.faults.test_service_faults import capped_user_spent, caps_of, enforced

pytestmark = [pytest.mark.stack, pytest.mark.faults]

EVENTS = 30_000
RATE = 800.0  # events a second: about 38 s, in which both kills and restarts happen


def six_free_ports() -> int:
    """A port p with p .. p+5 free: three brokers and their controllers. Below the kernel's ephemeral range:
    a port from it (what binding port 0 gives) can become the source port of a node's own connection to
    another's controller before that node binds it (a CI run lost node 2 to "Address already in use")."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    while True:
        base = rng.randrange(max(low - 12_000, 10_000), low - 6)
        if all(free_port_is(base + i) for i in range(6)):
            return base


def free_port_is(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture(scope="module")
def brokers(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackSettings]:
    """A KRaft cluster of three nodes in a folder of its own (the jars from the shared cache)."""
    base = six_free_ports()
    layout = stack.stack.model_copy(
        update={
            "home": tmp_path_factory.mktemp("kafka3"),
            "kafka_brokers": 3,
            "kafka_port": base,
            "kafka_controller_port": base + 1,
            "kafka_heap": "512m",
        }
    )
    try:
        manager.up(layout, ["kafka"])
        yield layout
    finally:
        manager.down(layout, ["kafka"])


@pytest.fixture
def on_three(stack: Settings, brokers: StackSettings) -> Iterator[Deployment]:
    """A deployment whose topics are on the three brokers (Redis and ClickHouse: the shared stack's)."""
    settings = stack.model_copy(update={"kafka": stack.kafka.model_copy(update={"bootstrap": bootstrap_of(brokers)})})
    with deployed(settings) as dep:
        yield dep


def leaders(dep: Deployment) -> dict[int, int]:
    """The usage topic's partitions and the node that leads each (-1: none)."""
    metadata = AdminClient({"bootstrap.servers": dep.settings.kafka.bootstrap}).list_topics(timeout=10)
    return {p.id: p.leader for p in metadata.topics[dep.topics.usage].partitions.values()}


def fully_replicated(dep: Deployment) -> bool:
    metadata = AdminClient({"bootstrap.servers": dep.settings.kafka.bootstrap}).list_topics(timeout=10)
    topics = [dep.topics.usage, dep.topics.dlq, dep.topics.config, dep.topics.alerts]
    return all(len(p.isrs) == 3 for t in topics for p in metadata.topics[t].partitions.values())


def busiest_partition(dep: Deployment) -> int:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": dep.settings.kafka.bootstrap, "group.id": f"probe-{uuid.uuid4()}"})
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(dep.topics.usage, p), timeout=10)[1] for p in leaders(dep)
        }
    finally:
        consumer.close()
    return max(ends, key=lambda p: ends[p])


def denied_for(caps: CapClient, seconds: float) -> None:
    """Over-cap requests keep being refused while a broker is down (the caps are Redis's, not Kafka's)."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        assert enforced(caps), "an over-cap request was admitted while a broker was down"
        time.sleep(0.1)


def test_topics_are_replicated_three_times_with_two_in_sync(on_three: Deployment) -> None:
    dep = on_three
    admin = AdminClient({"bootstrap.servers": dep.settings.kafka.bootstrap})
    metadata = admin.list_topics(timeout=10)
    topics = [dep.topics.usage, dep.topics.dlq, dep.topics.config, dep.topics.alerts]
    for topic in topics:
        assert {len(p.replicas) for p in metadata.topics[topic].partitions.values()} == {3}, topic
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic) for topic in topics]
    for resource, future in admin.describe_configs(resources).items():
        assert future.result(timeout=10)["min.insync.replicas"].value == "2", resource


def test_one_broker_then_the_busiest_partitions_leader_sigkilled(
    on_three: Deployment, stack: Settings, brokers: StackSettings
) -> None:
    with faulty_on(on_three, stack) as faulty:
        run_with_broker_kills(faulty, brokers)


def run_with_broker_kills(faulty: Faulty, brokers: StackSettings) -> None:
    dep = faulty.dep
    nodes = {node.node: node for node in kafka_nodes(brokers)}
    dep.start_worker()
    dep.start_worker()
    capped_user_spent(faulty)
    caps = caps_of(faulty)
    # slower and longer than the other cases' replays: both kills and restarts fall within it
    replay = faulty.replay(make_events(EVENTS, datetime.now(UTC), f"k{int(time.time())}"), rate=RATE)
    dep.wait_for(lambda: dep.ch_rows() >= 4_000, 120, "the replay under way")
    first = nodes[3]
    kill(first)
    denied_for(caps, 5)
    restart(brokers, dep)
    busiest = busiest_partition(dep)
    leader = leaders(dep)[busiest]
    assert leader in nodes, f"partition {busiest} has no leader"
    assert replay.thread.is_alive(), "the replay ended before the second kill: slow it down"
    kill(nodes[leader])
    denied_for(caps, 5)
    dep.wait_for(lambda: leaders(dep)[busiest] not in (leader, -1), 30, f"partition {busiest} led by another node")
    restart(brokers, dep)
    replay.wait(timeout=400)
    faulty.conserved([*replay.events, *faulty.sent], timeout=300)
    assert all(worker.poll() is None for worker in dep.workers), "a worker died with a broker"
    assert enforced(caps)


def restart(brokers: StackSettings, dep: Deployment) -> None:
    """The killed node starts again on its data and catches up: every partition in sync on three nodes."""
    manager.up(brokers, ["kafka"])
    dep.wait_for(lambda: fully_replicated(dep), 120, "every partition back in sync on three nodes")
