"""The LiteLLM proxy hook: reserve before each request, emit the UsageEvent after it.

Use it in the proxy's config::

    litellm_settings:
      callbacks: streams.litellm_hook.handler

The subject of a request: the org from the request's ``metadata.spendstream_org_id`` (else the key's
``org_id``, else ``SPENDSTREAM_LITELLM_DEFAULT_ORG``), the department from
``metadata.spendstream_department_id`` (else the key's team), the user from the request's ``user``
(else the key's user), the feature from ``metadata.spendstream_feature`` (default ``chat``).

Before the call, the hook estimates the cost with LiteLLM's bundled price map and tokenizer (prompt
tokens counted, output at ``max_tokens`` or the learned percentile) and reserves it; a denial is an
HTTP 429 carrying our reason and the blocking scope. After a success it sends the UsageEvent, with
the reservation's ``request_id``, to ``usage.v1``: the stream worker settles the reservation. After a
failure it releases the reservation. Needs ``pip install spendstream[litellm]`` in the proxy's
environment; settings come from the usual ``SPENDSTREAM_*`` variables.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import litellm
from confluent_kafka import Producer
from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger

from enforcement.client import AsyncCapClient
from enforcement.estimator import Estimator
from enforcement.keys import Subject, SubjectError
from schemas.events import UsageEvent, encode_event
from schemas.money import round_nanos
from schemas.price_sources import parse_litellm_price_map
from schemas.pricing import PriceCatalogue
from schemas.settings import Settings
from streams.topics import Topics

__all__ = ["SpendstreamHook", "handler"]

log = logging.getLogger("spendstream.litellm")
_META = "spendstream_request_id"


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
        password = self.settings.redis.password
        self.caps = AsyncCapClient.from_url(
            self.settings.redis.url,
            password=password.get_secret_value() if password else None,
            key_prefix=self.settings.redis.key_prefix,
            timeout_s=self.settings.decision.timeout_s,
            on_redis_unavailable=self.settings.decision.on_redis_unavailable,
        )
        self.topic = Topics(self.settings.kafka.topic_prefix).usage
        self.producer = Producer(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": self.settings.kafka.compression,
            }
        )
        self.default_org = os.environ.get("SPENDSTREAM_LITELLM_DEFAULT_ORG", "default")
        self.estimator = Estimator(self._bundled_prices())

    @staticmethod
    def _bundled_prices() -> PriceCatalogue:
        try:
            text = json.dumps(litellm.model_cost)
            return PriceCatalogue.of(parse_litellm_price_map(text, datetime(2000, 1, 1, tzinfo=UTC)))
        except Exception:
            log.exception("LiteLLM's price map could not be read; reservations estimate 0")
            return PriceCatalogue()

    def _subject(self, data: dict[str, Any], key: Any) -> Subject:
        metadata = _metadata(data)
        org = metadata.get("spendstream_org_id") or getattr(key, "org_id", None) or self.default_org
        department = metadata.get("spendstream_department_id") or getattr(key, "team_id", None)
        user = data.get("user") or getattr(key, "user_id", None) or "anonymous"
        feature = metadata.get("spendstream_feature") or "chat"
        model = str(data.get("model") or "unknown")
        provider = model.split("/", 1)[0] if "/" in model else "litellm"
        return Subject(
            org_id=str(org),
            user_id=str(user),
            department_id=department,
            feature=str(feature),
            model=model.rsplit("/", 1)[-1],
            provider=provider,
        )

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any]:
        try:
            subject = self._subject(data, user_api_key_dict)
        except SubjectError as exc:
            raise HTTPException(status_code=400, detail={"error": f"spendstream: {exc}"}) from exc
        model = str(data.get("model") or "")
        try:
            prompt_tokens = litellm.token_counter(model=model, messages=data.get("messages") or [])
        except Exception:  # noqa: BLE001 - an unknown tokenizer: estimate from the output alone
            prompt_tokens = 0
        entry_model = model.rsplit("/", 1)[-1]
        provider = litellm.model_cost.get(entry_model, {}).get("litellm_provider", subject.provider or "")
        estimate = self.estimator.estimate(
            provider,
            entry_model,
            subject.feature or "chat",
            prompt_tokens,
            data.get("max_tokens"),
            datetime.now(UTC),
            subject.org_id,
        )
        request_id = f"llm-{uuid.uuid4().hex}"
        decision = await self.caps.reserve(subject, request_id, estimate)
        if not decision.allowed:
            detail = {"error": f"spendstream: {decision.reason}", "outcome": decision.outcome.value}
            if decision.blocking is not None:
                detail["blocking_scope"] = f"{decision.blocking.scope}/{decision.blocking.period}"
            raise HTTPException(status_code=429, detail=detail)
        metadata = _metadata(data)
        metadata[_META] = request_id
        metadata["spendstream_subject"] = {
            "org_id": subject.org_id,
            "department_id": subject.department_id,
            "user_id": subject.user_id,
            "feature": subject.feature,
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
        usage = getattr(response_obj, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        output = int(getattr(usage, "completion_tokens", 0) or 0)
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        reasoning = int(getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", 0) or 0)
        cost = kwargs.get("response_cost")
        event = UsageEvent(
            event_id=str(kwargs.get("litellm_call_id") or request_id),
            occurred_at=end_time.astimezone(UTC) if end_time.tzinfo else end_time.replace(tzinfo=UTC),
            org_id=subject["org_id"],
            department_id=subject.get("department_id"),
            user_id=subject["user_id"],
            feature=subject.get("feature") or "chat",
            provider=str(kwargs.get("custom_llm_provider") or "litellm"),
            model=str(kwargs.get("model") or "unknown"),
            request_id=request_id,
            input_tokens=max(0, prompt - cached),
            cache_read_tokens=cached,
            output_tokens=max(0, output - reasoning),
            reasoning_tokens=reasoning,
            # LiteLLM reports its cost as a float: read its shortest repr once, at the boundary.
            cost_nanos=None if cost is None else round_nanos(Decimal(repr(float(cost)))),
            latency_ms=max(0, int((end_time - start_time).total_seconds() * 1000)),
        )
        self.producer.produce(self.topic, key=event.org_id.encode(), value=encode_event(event))
        self.producer.poll(0)

    async def async_post_call_failure_hook(self, *args: Any, **kwargs: Any) -> None:
        request_data = kwargs.get("request_data") or (args[0] if args and isinstance(args[0], dict) else {})
        metadata = request_data.get("metadata") or {}
        request_id = metadata.get(_META)
        subject = metadata.get("spendstream_subject")
        if request_id and subject:
            await self.caps.release(subject["org_id"], request_id)


handler = SpendstreamHook()
