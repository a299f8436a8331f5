"""The LiteLLM proxy hook: reserve before each request, emit the UsageEvent after it.

Use it in the proxy's config::

    litellm_settings:
      callbacks: integrations.litellm_hook.handler

Who a request spends as comes from the proxy's authenticated key (:mod:`integrations.litellm_mapping`
says how, and what a deployment whose keys carry no org can opt into); a request that names another
org, department or user in its metadata is refused with 403.

Before the call, the hook resolves the requested model as the proxy's router will (an alias such as
``team-default`` becomes its deployment's provider and model), estimates the cost with LiteLLM's
bundled price map (context tiers included) and tokenizer, and reserves it against those very scopes;
a denial is an HTTP 429 carrying our reason and the blocking scope. After a success it validates
and sends the UsageEvent (disjoint token counts, cache writes and service tier included; a response
from LiteLLM's own cache is billed at zero), with the reservation's ``request_id``, to ``usage.v1``:
the stream worker settles the reservation. An event that fails validation or that Kafka does not
take is counted (``spendstream_litellm_events_lost_total{reason}``), logged, and its reservation
released; the producer is flushed when the proxy stops. After a failed call the reservation is
released. Needs ``pip install spendstream[litellm]`` in the proxy's environment; settings come from
the usual ``SPENDSTREAM_*`` variables.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import litellm
from confluent_kafka import KafkaError, KafkaException
from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger
from prometheus_client import Counter

from bus.config_topic import ConfigCache
from bus.topics import Topics
from bus.usage_producer import UsageProducer
from enforcement.client import AsyncCapClient
from enforcement.estimator import Estimator
from enforcement.subject import Subject, SubjectError
from integrations.litellm_mapping import (
    Identity,
    IdentityError,
    KeyView,
    identity,
    prompt_tokens_bound,
    read,
    request_tags,
    usage_event,
)
from schemas.allocation_tags import cap_tags
from schemas.budgets import OrgConfig
from schemas.config_records import ConfigState
from schemas.events import EventError, UsageEvent, decode_event, encode_event
from schemas.price_sources import parse_litellm_price_map
from schemas.pricing import PriceCatalogue
from schemas.settings import Settings

__all__ = ["SpendstreamHook", "handler"]

log = logging.getLogger("spendstream.litellm")
_META = "spendstream_request_id"
_ROUTE_CACHE_S = 60.0

LOST = Counter(
    "spendstream_litellm_events_lost",
    "Usage events the hook could not send (invalid, or refused by Kafka); their reservations are released",
    ["reason"],
)


def _metadata(data: dict[str, Any]) -> dict[str, Any]:
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
        data["metadata"] = metadata
    return metadata


class SpendstreamHook(CustomLogger):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.settings = Settings()
        self.caps = AsyncCapClient.from_url(
            self.settings.redis.url,
            password=self.settings.redis.password_text(),
            cluster=self.settings.redis.cluster,
            key_prefix=self.settings.redis.key_prefix,
            timeout_s=self.settings.decision.timeout_s,
            on_redis_unavailable=self.settings.decision.on_redis_unavailable,
            unknown_orgs=self.settings.decision.unknown_orgs,
        )
        self.producer = UsageProducer(
            self.settings.kafka.bootstrap,
            Topics(self.settings.kafka.topic_prefix).usage,
            linger_ms=self.settings.litellm.linger_ms,
            compression=self.settings.kafka.compression,
        )
        self.estimator = Estimator(self._bundled_prices())
        self.orgs: dict[str, OrgConfig] = {}  # from config.v1: each org's declared allocation tags
        self.config = ConfigCache.of(
            self.settings.kafka.bootstrap,
            Topics(self.settings.kafka.topic_prefix),
            self.settings.decision.catalogue_refresh_s,
        )
        self.config.follow(on_read=self._follow_orgs)
        self._routes: dict[str, tuple[float, str, str]] = {}  # alias -> (when, provider, model)
        self._unsent: list[tuple[str, str]] = []  # (org, request_id) of events Kafka refused: to release
        self._poller: asyncio.Task[None] | None = None
        atexit.register(self.close)

    def _follow_orgs(self, state: ConfigState) -> None:
        self.orgs = dict(state.orgs)

    @staticmethod
    def _bundled_prices() -> PriceCatalogue:
        try:
            text = json.dumps(litellm.model_cost)
            return PriceCatalogue.of(parse_litellm_price_map(text, datetime(1970, 1, 1, tzinfo=UTC)))
        except Exception:
            log.exception("LiteLLM's price map could not be read; every model is estimated as unpriced")
            return PriceCatalogue()

    def close(self) -> None:
        """Flush what is still queued for Kafka (the proxy is stopping)."""
        left = self.producer.undelivered_after(10)
        if left:
            LOST.labels("undelivered_at_exit").inc(left)
            log.error("%d usage events were still undelivered when the proxy stopped", left)

    def route(self, requested: str) -> tuple[str, str]:
        """(provider, model) of the deployment the router sends ``requested`` to: the same resolution LiteLLM
        reports after the call (``custom_llm_provider`` and ``model``), so reserve and settle name one scope."""
        cached = self._routes.get(requested)
        if cached is not None and time.monotonic() - cached[0] < _ROUTE_CACHE_S:
            return cached[1], cached[2]
        target = requested
        try:
            from litellm.proxy.proxy_server import llm_router  # noqa: PLC0415 - the running proxy's router

            deployments = llm_router.get_model_list(model_name=requested) if llm_router is not None else None
            models = {d["litellm_params"]["model"] for d in deployments or []}
            if len(models) == 1:
                target = models.pop()
        except Exception:
            log.debug("no router resolution for %s", requested, exc_info=True)
        try:
            model, provider, _, _ = litellm.get_llm_provider(model=target)
        except Exception:  # noqa: BLE001 - a model LiteLLM does not know: keep its name
            provider, model = target.split("/", 1) if "/" in target else ("unknown", target)
        self._routes[requested] = (time.monotonic(), str(provider), str(model))
        return str(provider), str(model)

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any]:
        conf = self.settings.litellm
        try:
            key = KeyView.of(user_api_key_dict)
            who = identity(key, data, conf.default_org, conf.trust_request_user)
            org = self.orgs.get(who.org_id)
            who = replace(who, tags=request_tags(key, data, org))
            provider, model = self.route(str(data.get("model") or ""))
            tags = cap_tags(org.tag_values(dict(who.tags))) if org is not None else ()
            subject = Subject(
                who.org_id, who.user_id, who.department_id, who.feature, model, provider, who.api_key_id, tags
            )
        except IdentityError as exc:
            raise HTTPException(status_code=exc.status, detail={"error": f"spendstream: {exc}"}) from exc
        except SubjectError as exc:
            raise HTTPException(status_code=400, detail={"error": f"spendstream: {exc}"}) from exc
        prompt_tokens = prompt_tokens_bound(data.get("messages"))
        estimate = self.estimator.estimate(
            provider, model, who.feature, prompt_tokens, data.get("max_tokens"), datetime.now(UTC), who.org_id
        )
        request_id = f"llm-{os.urandom(16).hex()}"  # as unique as a uuid4, a fifth of its cost
        decision = await self.caps.reserve(subject, request_id, estimate)
        if not decision.allowed:
            detail = {"error": f"spendstream: {decision.reason}", "outcome": decision.outcome.value}
            if decision.blocking is not None:
                detail["blocking_scope"] = f"{decision.blocking.scope}/{decision.blocking.period}"
            raise HTTPException(status_code=429, detail=detail)
        metadata = _metadata(data)
        metadata[_META] = request_id
        metadata["spendstream_subject"] = {
            "org_id": who.org_id,
            "department_id": who.department_id,
            "user_id": who.user_id,
            "feature": who.feature,
            "api_key_id": who.api_key_id,
            "tags": dict(who.tags),
        }
        return data

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        subject = metadata.get("spendstream_subject")
        request_id = metadata.get(_META)
        if not subject or not request_id:
            return
        who = Identity(
            subject["org_id"],
            subject.get("department_id"),
            subject["user_id"],
            subject["feature"],
            subject.get("api_key_id"),
            tuple((subject.get("tags") or {}).items()),
        )
        tier = read(response_obj, "service_tier") or (kwargs.get("optional_params") or {}).get("service_tier")
        event = usage_event(
            who,
            event_id=str(kwargs.get("litellm_call_id") or request_id),
            request_id=request_id,
            provider=str(kwargs.get("custom_llm_provider") or "unknown"),
            model=str(kwargs.get("model") or "unknown"),
            end_time=end_time,
            latency_ms=int((end_time - start_time).total_seconds() * 1000),
            usage=read(response_obj, "usage"),
            cost=kwargs.get("response_cost"),
            cache_hit=bool(kwargs.get("cache_hit")),
            tier=tier,
        )
        await self.send(event)

    async def send(self, event: UsageEvent) -> None:
        """Produce a validated event; an invalid one, or one Kafka refuses, releases its reservation."""
        encoded = encode_event(event)
        checked = decode_event(encoded)  # the same validation the worker applies
        if isinstance(checked, EventError):
            LOST.labels("invalid").inc()
            log.error("usage event %s not sent, it is invalid: %s", event.event_id, checked)
            await self._release(event.org_id, event.request_id)
            return

        def delivered(error: KafkaError | None, _message: Any) -> None:
            if error is not None:
                LOST.labels("kafka").inc()
                log.error("usage event %s was not delivered: %s", event.event_id, error)
                self._unsent.append((event.org_id, event.request_id or ""))

        try:
            self.producer.produce(event.org_id.encode(), encoded, on_delivery=delivered)
        except (BufferError, KafkaException) as exc:
            LOST.labels("kafka").inc()
            log.error("usage event %s was not queued: %s", event.event_id, exc)
            await self._release(event.org_id, event.request_id)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll_deliveries())

    async def _poll_deliveries(self, every_s: float = 0.2) -> None:
        """Serve Kafka's delivery reports, and release the reservation of every event it did not take."""
        while True:
            self.producer.poll(0)
            while self._unsent:
                org_id, request_id = self._unsent.pop()
                await self._release(org_id, request_id)
            await asyncio.sleep(every_s)

    async def _release(self, org_id: str, request_id: str | None) -> None:
        if not request_id:
            return
        try:
            await self.caps.release(org_id, request_id)
        except Exception:
            log.warning("releasing %s failed; it expires after its TTL", request_id, exc_info=True)

    async def async_post_call_failure_hook(self, *args: Any, **kwargs: Any) -> None:
        request_data = kwargs.get("request_data") or (args[0] if args and isinstance(args[0], dict) else {})
        metadata = request_data.get("metadata") or {}
        request_id = metadata.get(_META)
        subject = metadata.get("spendstream_subject")
        if request_id and subject:
            await self._release(subject["org_id"], request_id)


handler = SpendstreamHook()
