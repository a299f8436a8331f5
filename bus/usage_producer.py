"""The one producer of usage events to Kafka (confluent-kafka): keyed by org, idempotent, acknowledged by
every in-sync replica. The CLI's replay and the demo send and wait; the decision service awaits each
event's delivery (:meth:`UsageProducer.publish`); the LiteLLM hook queues without waiting and learns of each
delivery by callback (:meth:`UsageProducer.produce`)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, Producer

from schemas.events import UsageEvent, encode_event

__all__ = ["Delivered", "UsageProducer"]

Delivered = Callable[[KafkaError | None, Any], None]
"""Called once per event, from :meth:`UsageProducer.poll`: with None when the broker has it, else the error."""


class UsageProducer:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        linger_ms: int = 5,
        compression: str = "lz4",
        message_timeout_ms: int | None = None,
    ) -> None:
        self.topic = topic
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,  # a Kafka request per few events, not per event
            "batch.num.messages": 10_000,
            "compression.type": compression,  # none, gzip, snappy, lz4 or zstd
        }
        if message_timeout_ms is not None:
            config["message.timeout.ms"] = message_timeout_ms  # how long an event may wait for the broker
        self.producer = Producer(config)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def produce(self, key: bytes, value: bytes, on_delivery: Delivered | None = None) -> None:
        """Queue one record without waiting; raises ``BufferError`` when the local queue is full."""
        self.producer.produce(self.topic, key=key, value=value, on_delivery=on_delivery)

    def send_raw(self, key: bytes, value: bytes) -> None:
        """Queue one record, waiting while the local queue is full."""
        while True:
            try:
                self.produce(key, value)
                return
            except BufferError:
                self.producer.poll(0.05)

    def send(self, event: UsageEvent) -> None:
        self.send_raw(event.org_id.encode(), encode_event(event))

    def poll(self, timeout_s: float = 0) -> int:
        """Serve delivery reports (their callbacks run here); how many were served."""
        return int(self.producer.poll(timeout_s))

    def flush(self, timeout_s: float = 60) -> None:
        """Wait until every queued event is delivered; raises when some are not within ``timeout_s``."""
        left = self.undelivered_after(timeout_s)
        if left:
            raise RuntimeError(f"{left} usage events still undelivered after flush")

    def undelivered_after(self, timeout_s: float) -> int:
        """Flush for at most ``timeout_s``: how many events are still undelivered then."""
        return int(self.producer.flush(timeout_s))

    def start_polling(self) -> UsageProducer:
        """Serve delivery reports from a thread of its own, for :meth:`publish`; stopped by :meth:`close`."""
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="usage-publisher", daemon=True)
            self._poller.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    async def publish(self, event: UsageEvent) -> None:
        """Send ``event`` and return once the broker has it (raises RuntimeError if it refuses). Needs
        :meth:`start_polling`."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(RuntimeError(str(error)))

        def delivered(error: KafkaError | None, _message: Any) -> None:
            loop.call_soon_threadsafe(settle, done, error)

        self.produce(event.org_id.encode(), encode_event(event), on_delivery=delivered)
        await done

    def close(self, timeout_s: float = 10) -> int:
        """Stop polling and flush: how many events are still undelivered."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        return self.undelivered_after(timeout_s)

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
