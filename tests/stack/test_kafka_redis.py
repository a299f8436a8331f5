"""Kafka 4 round trips with both client libraries, and Redis."""

import asyncio
import subprocess
import sys

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.settings import Settings

N = 500


def create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
        future.result(timeout=30)


@pytest.mark.stack
def test_confluent_producer_to_aiokafka_consumer(stack: Settings, unique_name: str) -> None:
    topic = f"{unique_name}.usage"
    create_topic(stack.kafka.bootstrap, topic)
    producer = Producer({"bootstrap.servers": stack.kafka.bootstrap, "enable.idempotence": True, "acks": "all"})
    for i in range(N):
        producer.produce(topic, key=f"org{i % 5}".encode(), value=f"event-{i}".encode())
    assert producer.flush(30) == 0

    async def consume() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=stack.kafka.bootstrap,
            group_id=unique_name,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        seen: list[bytes] = []
        try:
            while len(seen) < N:
                batches = await consumer.getmany(timeout_ms=5000)
                assert batches, "no messages within 5 s"
                for records in batches.values():
                    seen.extend(r.value for r in records if r.value is not None)
            await consumer.commit()
        finally:
            await consumer.stop()
        return seen

    values = asyncio.run(consume())
    assert sorted(values) == sorted(f"event-{i}".encode() for i in range(N))


@pytest.mark.stack
def test_aiokafka_producer_to_confluent_consumer(stack: Settings, unique_name: str) -> None:
    topic = f"{unique_name}.usage"
    create_topic(stack.kafka.bootstrap, topic)

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka.bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            for i in range(N):
                await producer.send(topic, key=b"k%d" % (i % 4), value=b"v%d" % i)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka.bootstrap,
            "group.id": unique_name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: list[bytes] = []
    try:
        for _ in range(200):
            if len(seen) >= N:
                break
            for message in consumer.consume(num_messages=N, timeout=1.0):
                assert message.error() is None, message.error()
                value = message.value()
                assert value is not None
                seen.append(value)
    finally:
        consumer.close()
    assert sorted(seen) == sorted(b"v%d" % i for i in range(N))


@pytest.mark.stack
def test_redis_is_reachable(stack: Settings, unique_name: str) -> None:
    client = redis.Redis.from_url(stack.redis.url)
    assert client.ping() is True
    key = f"{unique_name}:{{org}}:spend"
    assert client.incrby(key, 1_000_000_007) == 1_000_000_007
    client.delete(key)


@pytest.mark.stack
def test_cli_status_reports_every_service_ready(stack: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "admin.cli", "stack", "status"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for service in ("redis", "clickhouse", "kafka"):
        assert any(line.startswith(service) and "ready" in line for line in result.stdout.splitlines())


@pytest.mark.stack
def test_cli_up_is_idempotent(stack: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "admin.cli", "stack", "up"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("already running") == 3
