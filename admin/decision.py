"""``spendstream decision serve``: the decision service with its adapters built from settings.

The service itself (:mod:`enforcement.service`) takes its Redis client, keys, estimator and
publisher as arguments; this module builds them: the key ring from the keys file, a Kafka
publisher for ``/v1/usage`` (it answers once the broker has the event), and an estimator whose
prices follow ``config.v1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import KafkaError, Producer
from starlette.applications import Starlette

from bus.admin import config_state
from bus.topics import Topics
from enforcement.access import KeyFileError, KeyRing, hash_key, new_key, parse_keys
from enforcement.client import AsyncCapClient
from enforcement.estimator import Estimator
from enforcement.service import create_app
from schemas.events import UsageEvent, encode_event
from schemas.pricing import PriceCatalogue
from schemas.settings import Settings

__all__ = ["KafkaPublisher", "build_app", "load_keys"]

log = logging.getLogger("spendstream.decision")


def load_keys(path: Path) -> KeyRing:
    """The key ring of a keys file; :class:`KeyFileError` names the field that is wrong."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise KeyFileError("keys_file", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise KeyFileError("$", f"malformed YAML: {exc}") from None
    return parse_keys(doc)


class KafkaPublisher:
    """Publishes usage events to the usage topic; :meth:`publish` returns once the broker has the event."""

    def __init__(self, bootstrap: str, topic: str, compression: str = "lz4") -> None:
        self.topic = topic
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "compression.type": compression,
                "message.timeout.ms": 10_000,
            }
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="usage-publisher", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    async def publish(self, event: UsageEvent) -> None:
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

        self.producer.produce(self.topic, key=event.org_id.encode(), value=encode_event(event), on_delivery=delivered)
        await done

    def close(self) -> None:
        self._stop.set()
        self._poller.join(timeout=5)
        self.producer.flush(10)


def build_app(settings: Settings, keys: KeyRing) -> Starlette:
    """The decision service, with its estimator following the prices on config.v1."""
    decision = settings.decision
    client = AsyncCapClient.from_url(
        settings.redis.url,
        password=settings.redis.password_text(),
        cluster=settings.redis.cluster,
        timeout_s=decision.timeout_s,
        key_prefix=settings.redis.key_prefix,
        reservation_ttl_s=decision.reservation_ttl_s,
        on_redis_unavailable=decision.on_redis_unavailable,
        unknown_orgs=decision.unknown_orgs,
    )
    topics = Topics(settings.kafka.topic_prefix)
    publisher = KafkaPublisher(settings.kafka.bootstrap, topics.usage, settings.kafka.compression)
    estimator = Estimator(PriceCatalogue())

    def read_prices() -> PriceCatalogue:
        state = config_state(settings.kafka.bootstrap, topics.config, on_error=lambda exc: log.warning("%s", exc))
        return state.catalogue()

    async def follow_prices() -> None:
        while True:
            try:
                estimator.catalogue = await asyncio.to_thread(read_prices)
            except Exception:
                log.warning("reading prices from %s failed; keeping the last ones", topics.config, exc_info=True)
            await asyncio.sleep(decision.catalogue_refresh_s)

    app = create_app(
        client,
        keys,
        estimator,
        publisher.publish,
        max_past_s=decision.max_past_s,
        max_future_s=decision.max_future_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(follow_prices())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.to_thread(publisher.close)
            await client.aclose()

    app.router.lifespan_context = lifespan
    return app


def new_key_entry(name: str, orgs: list[str], rights: list[str]) -> str:
    """A new proxy key, shown once, and the keys-file entry that admits it (its SHA-256, never the key)."""
    key = new_key()
    entry = {"name": name, "sha256": hash_key(key), "orgs": orgs, "rights": rights}
    return (
        f"# the key, shown this once: give it to the proxy, keep it nowhere else\n# {key}\n"
        "# append this entry to the keys file (SPENDSTREAM_DECISION__KEYS_FILE):\n"
        f"  - {json.dumps(entry)}"
    )


def app_from_settings(settings: Settings) -> Starlette:
    """The decision service for ``spendstream decision serve``; :class:`KeyFileError` when it has no usable keys."""
    keys_file = settings.decision.keys_file
    if keys_file is None:
        raise KeyFileError(
            "SPENDSTREAM_DECISION__KEYS_FILE",
            "set it to the proxy keys file (make a key with `spendstream decision new-key --name NAME --org ORG`)",
        )
    try:
        keys = load_keys(keys_file)
    except KeyFileError as exc:
        raise KeyFileError(f"{keys_file}: {exc.field}", exc.reason) from None
    return build_app(settings, keys)
