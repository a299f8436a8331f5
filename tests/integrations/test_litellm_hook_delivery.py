"""The LiteLLM hook never loses usage silently, in LiteLLM's own environment against the real Redis.

It had no delivery callback, no flush on shutdown and no validation: an event Kafka did not take, or an
invalid one, was unbilled without a trace and its reservation held until the TTL. Now each is counted
(``spendstream_litellm_events_lost_total{reason}``), logged, and its reservation released."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from enforcement.budget_store import apply_budgets
from enforcement.keys import KeyLayout
from schemas import Budget, BudgetMode, Period, ScopeKind
from schemas.budgets import OrgConfig
from schemas.settings import Settings
from tests.deployment import ROOT

pytestmark = pytest.mark.stack

SCRIPT = """
import asyncio, json
from datetime import datetime, timezone
from bus.usage_producer import UsageProducer
from enforcement.subject import Subject
from integrations.litellm_hook import LOST, handler
from integrations.litellm_mapping import Identity, usage_event

async def main():
    hook = handler
    hook.producer = UsageProducer("127.0.0.1:1", "usage.v1", message_timeout_ms=1500)  # no broker there
    who = Identity("acme", "eng", "ada", "chat", None)
    ada = Subject("acme", "ada", "eng", "chat", "gpt-4o", "openai")
    out = {}
    for request_id, model in (("lost-1", "gpt-4o"), ("invalid-1", "gpt 4o")):
        decision = await hook.caps.reserve(ada, request_id, 50_000)
        assert decision.allowed, decision.reason
        event = usage_event(
            who, event_id=request_id, request_id=request_id, provider="openai", model=model,
            end_time=datetime.now(timezone.utc), latency_ms=5, usage=None, cost=None, cache_hit=False,
        )
        await hook.send(event)
        out[request_id + "-after-send"] = (await hook.caps.spend("acme", "user/ada"))["reserved"]
    await asyncio.sleep(3)  # past the delivery timeout: the report comes, the poller releases
    out["reserved"] = (await hook.caps.spend("acme", "user/ada"))["reserved"]
    out["lost"] = {s.labels["reason"]: s.value for m in LOST.collect() for s in m.samples if s.name.endswith("_total")}
    print(json.dumps(out))

asyncio.run(main())
"""


def test_an_event_kafka_refuses_or_an_invalid_one_releases_its_reservation_and_is_counted(
    stack: Settings, litellm_bin: Path, redis_client: object, key_prefix: str
) -> None:
    apply_budgets(
        redis_client,
        KeyLayout(key_prefix),
        [OrgConfig("acme")],
        [Budget("acme", ScopeKind.USER, "ada", Period.MONTHLY, 10**9, BudgetMode.HARD)],
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "SPENDSTREAM_REDIS__URL": stack.redis.url,
        "SPENDSTREAM_REDIS__KEY_PREFIX": key_prefix,
    }
    result = subprocess.run(
        [str(litellm_bin.parent / "python"), "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["lost-1-after-send"] == 50_000  # queued: held until Kafka answers
    assert out["invalid-1-after-send"] == 50_000  # the invalid one was released at once; lost-1 still held
    assert out["reserved"] == 0  # and lost-1 once Kafka gave up on it
    assert out["lost"] == {"invalid": 1.0, "kafka": 1.0}
