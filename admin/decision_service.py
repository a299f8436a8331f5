"""``spendstream decision serve``: the decision service with its adapters built from settings.

The service itself (:mod:`enforcement.decision_api`) takes its Redis client, keys, estimator and
publisher as arguments; this module builds them: the key ring from the keys file, a Kafka
publisher for ``/v1/usage`` (it answers once the broker has the event), and an estimator whose
prices follow ``config.v1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import yaml
from starlette.applications import Starlette

from bus.config_topic import ConfigCache
from bus.topics import Topics
from bus.usage_producer import UsageProducer
from enforcement.access import KeyFileError, KeyRing, hash_key, new_key, parse_keys
from enforcement.client import AsyncCapClient
from enforcement.decision_api import create_app
from enforcement.estimator import Estimator
from schemas.allocation_tags import cap_tags
from schemas.budgets import OrgConfig
from schemas.config_records import ConfigState
from schemas.pricing import PriceCatalogue
from schemas.settings import Settings

__all__ = ["build_app", "load_keys"]

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
    publisher = UsageProducer(
        settings.kafka.bootstrap,
        topics.usage,
        linger_ms=2,
        compression=settings.kafka.compression,
        message_timeout_ms=10_000,
    ).start_polling()
    estimator = Estimator(PriceCatalogue())
    prices = ConfigCache.of(settings.kafka.bootstrap, topics, decision.catalogue_refresh_s)

    orgs: dict[str, OrgConfig] = {}

    def follow_prices(state: ConfigState) -> None:
        estimator.catalogue = state.catalogue()
        orgs.clear()
        orgs.update(state.orgs)

    def tags(org_id: str, given: dict[str, str]) -> tuple[tuple[str, str], ...]:
        org = orgs.get(org_id)
        return cap_tags(org.tag_values(given)) if org is not None else ()

    app = create_app(
        client,
        keys,
        estimator,
        publisher.publish,
        max_past_s=decision.max_past_s,
        max_future_s=decision.max_future_s,
        tags=tags,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            follow_prices(await asyncio.to_thread(prices.state))
        except Exception:
            log.warning("reading prices from %s failed; unpriced until it answers", topics.config, exc_info=True)
        prices.follow(on_read=follow_prices)
        try:
            yield
        finally:
            prices.stop()
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
