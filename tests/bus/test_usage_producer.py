"""Every compression a producer may use reaches Redis and ClickHouse through the worker.

The worker reads with aiokafka, which decodes lz4, zstd and snappy through ``cramjam``; a fresh
environment without it crashed the worker's fetcher on the first lz4 batch while no test noticed.
Each codec sends its own events with :class:`~bus.producer.UsageProducer` (as ``replay`` and
the demo do) and with the LiteLLM hook's producer settings.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from bus.usage_producer import UsageProducer
from tests.deployment import Deployment, assert_exact, make_events

pytestmark = pytest.mark.stack

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def stored_codecs(dep: Deployment) -> set[str]:
    """The compression of every record batch of the usage topic, read from the broker's own log segments
    (record batch v2: the attributes' low three bits name the codec)."""
    names = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
    found: set[str] = set()
    data = dep.settings.stack.home / "kafka" / "data"
    for segment in data.glob(f"{dep.topics.usage}-*/*.log"):
        raw = segment.read_bytes()
        position = 0
        while position + 23 <= len(raw):
            length = struct.unpack_from(">i", raw, position + 8)[0]
            if length <= 0:
                break
            attributes = struct.unpack_from(">h", raw, position + 21)[0]
            found.add(names[attributes & 0x7])
            position += 12 + length
    return found


def test_every_producer_compression_is_counted_once(deployment: Deployment) -> None:
    dep = deployment
    now = datetime.now(UTC)
    dep.start_worker()
    events = []
    for seed, codec in enumerate(CODECS, start=20):
        batch = make_events(1_500, now, f"codec-{codec}", seed=seed)
        producer = UsageProducer(dep.settings.kafka.bootstrap, dep.topics.usage, compression=codec)
        assert producer.replay(batch, len(batch), progress=False) == len(batch)
        events += batch
    dep.wait_for(lambda: dep.ch_rows() == len(events), 120, "every codec's events in ClickHouse")
    assert stored_codecs(dep) == set(CODECS)  # the broker holds each codec's batches as sent
    assert (dep.metric("spendstream_events_dead_lettered_total") or 0) == 0
    assert dep.metric("spendstream_events_applied_total") == len(events)
    assert_exact(dep, events)


def test_unknown_compression_is_refused_by_the_settings() -> None:
    from pydantic import ValidationError

    from schemas.settings import KafkaSettings

    with pytest.raises(ValidationError, match="compression"):
        KafkaSettings(compression="brotli")
