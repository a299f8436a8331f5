"""Producing usage events to Kafka (confluent-kafka), as a proxy does: keyed by org, idempotent."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from confluent_kafka import Producer

from schemas.events import UsageEvent, encode_event

__all__ = ["UsageProducer"]


class UsageProducer:
    def __init__(self, bootstrap: str, topic: str, linger_ms: int = 5, compression: str = "lz4") -> None:
        self.topic = topic
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": linger_ms,
                "batch.num.messages": 10_000,
                "compression.type": compression,  # none, gzip, snappy, lz4 or zstd
            }
        )

    def send_raw(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(self.topic, key=key, value=value)
                return
            except BufferError:
                self.producer.poll(0.05)

    def send(self, event: UsageEvent) -> None:
        self.send_raw(event.org_id.encode(), encode_event(event))

    def flush(self, timeout_s: float = 60) -> None:
        if self.producer.flush(timeout_s) != 0:
            raise RuntimeError("usage events still undelivered after flush")

    def replay(
        self,
        events: Iterable[UsageEvent],
        total: int,
        rate: float | None = None,
        progress: bool = True,
        flush_timeout_s: float = 60,
    ) -> int:
        """Send events, at most ``rate`` per second when given; a progress bar on stderr. Raises when what
        was sent is not delivered within ``flush_timeout_s`` after the last one."""
        began = time.monotonic()
        sent = 0
        for event in events:
            self.send(event)
            sent += 1
            if sent % 1000 == 0:
                self.producer.poll(0)
                if rate:
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
                if progress:
                    _bar(sent, total, began)
        self.flush(flush_timeout_s)
        if progress:
            _bar(sent, total, began)
            sys.stderr.write("\n")
        return sent


def _bar(done: int, total: int, began: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    elapsed = max(time.monotonic() - began, 1e-9)
    sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done:>9,}/{total:,}  {done / elapsed:>8,.0f}/s")
    sys.stderr.flush()
