"""64 concurrent clients reserving and settling against one org, department and user with hard caps.

Checked: at every admission, committed + reserved <= limit for every hard-capped scope; the final
committed spend equals what was settled, to the nano-USD, and stays within the limit plus what
settles overshot their estimates; settles and releases are idempotent; after every reservation has
expired nothing is left held.
"""

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enforcement.budget_store import apply_budgets
from enforcement.client import AsyncCapClient
from enforcement.keys import KeyLayout
from enforcement.pipelined import PipelinedRedis
from enforcement.subject import Subject
from schemas import Budget, BudgetMode, Period, ScopeKind
from schemas.budgets import OrgConfig
from tests.enforcement.settle import AsyncSettler

CLIENTS = 64
OPS_PER_CLIENT = 25
SUBJECT = Subject(org_id="acme", department_id="eng", user_id="ada")
SCOPES = ["org/acme", "department/eng", "user/ada"]


async def run_clients(
    url: str,
    prefix: str,
    seed: int,
    max_estimate: int,
    connect: Callable[[str], Any] = aioredis.Redis.from_url,
    scripts: Callable[[str], Any] | None = None,
) -> dict[str, int]:
    """64 proxies at once against one user's caps; ``connect`` makes each one's Redis client, and
    ``scripts`` (when given) what sends its reserve and release calls."""
    ledger = {"settled": 0, "overshoot": 0, "admitted": 0, "denied": 0, "violations": 0}

    async def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        sender = scripts(url) if scripts else None
        caps = AsyncCapClient(connect(url), key_prefix=prefix, reservation_ttl_s=1, scripts=sender)
        settle = AsyncSettler(caps.redis, prefix)
        try:
            for op in range(OPS_PER_CLIENT):
                request_id = f"c{index}-r{op}"
                estimate = rng.randint(1, max_estimate)
                asked_at = time.monotonic()  # before the reserve: the hold is younger than the time since then
                decision = await caps.reserve(SUBJECT, request_id, estimate)
                if not decision.allowed:
                    ledger["denied"] += 1
                    continue
                ledger["admitted"] += 1
                for budget in decision.budgets:
                    if budget.mode == "hard" and budget.spent + budget.reserved > budget.limit:
                        ledger["violations"] += 1
                await asyncio.sleep(rng.random() * 0.002)
                choice = rng.random()
                if choice < 0.7:
                    actual = estimate * rng.randint(50, 150) // 100
                    first = await settle(SUBJECT, f"e-{request_id}", actual, request_id=request_id)
                    second = await settle(SUBJECT, f"e-{request_id}", actual, request_id=request_id)
                    assert first.applied and second.duplicate
                    ledger["settled"] += actual
                    ledger["overshoot"] += max(0, actual - estimate)
                elif choice < 0.85:
                    released = await caps.release("acme", request_id)
                    if time.monotonic() - asked_at < 0.9:  # within its 1 s TTL: it was still held
                        assert released is True  # (on a loaded machine it may have expired first: both are right)
                    assert await caps.release("acme", request_id) is False
                # else: abandoned, left to expire
        finally:
            await caps.aclose()

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return ledger


@pytest.mark.stack
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    user_limit=st.integers(50_000, 400_000),
    max_estimate=st.integers(1_000, 20_000),
)
def test_caps_hold_under_64_concurrent_clients(
    redis_client: redis.Redis, stack: object, seed: int, user_limit: int, max_estimate: int
) -> None:
    url = redis_client.connection_pool.connection_kwargs
    # on a standalone Redis the async client pipelines its script calls (AsyncCapClient.from_url)
    standalone = f"redis://{url['host']}:{url['port']}/0"
    caps_hold(redis_client, standalone, seed, user_limit, max_estimate, scripts=PipelinedRedis.from_url)


def caps_hold(
    redis_client: Any,
    url: str,
    seed: int,
    user_limit: int,
    max_estimate: int,
    connect: Callable[[str], Any] = aioredis.Redis.from_url,
    scripts: Callable[[str], Any] | None = None,
) -> None:
    """The property, on whatever Redis ``redis_client`` and ``connect`` reach (a Cluster too)."""
    prefix = f"tc{seed}x{user_limit}"
    layout = KeyLayout(prefix)
    limits = {"org/acme": user_limit * 3, "department/eng": user_limit * 2, "user/ada": user_limit}
    budgets = [
        Budget("acme", ScopeKind.ORG, "acme", Period.MONTHLY, limits["org/acme"], BudgetMode.HARD),
        Budget("acme", ScopeKind.DEPARTMENT, "eng", Period.DAILY, limits["department/eng"], BudgetMode.HARD),
        Budget("acme", ScopeKind.USER, "ada", Period.WEEKLY, limits["user/ada"], BudgetMode.HARD),
    ]
    try:
        apply_budgets(redis_client, layout, [OrgConfig("acme")], budgets)
        ledger = asyncio.run(run_clients(url, prefix, seed, max_estimate, connect, scripts))

        assert ledger["violations"] == 0
        assert ledger["admitted"] > 0 and ledger["denied"] > 0, ledger  # the caps were really contended
        caps = AsyncCapClient(connect(url), key_prefix=prefix)

        async def final() -> dict[str, dict[str, int]]:
            time.sleep(1.1)
            for _ in range(CLIENTS * OPS_PER_CLIENT // 64 + 1):  # each call expires up to 64 reservations
                await caps.release("acme", "trigger-lazy-expiry")
            spent = {scope: await caps.spend("acme", scope) for scope in SCOPES}
            await caps.redis.aclose()
            return spent

        spent = asyncio.run(final())
        for scope in SCOPES:
            assert spent[scope]["monthly"] == ledger["settled"], scope
            assert spent[scope]["reserved"] == 0, scope
            assert spent[scope]["monthly"] <= limits[scope] + ledger["overshoot"]
        assert spent["user/ada"]["weekly"] <= limits["user/ada"] + ledger["overshoot"]
        resv, resv_exp = layout.reservations("acme")
        assert redis_client.hlen(resv) == 0
        assert redis_client.zcard(resv_exp) == 0
        assert redis_client.hlen(layout.reserved("acme")) == 0
    finally:
        for key in redis_client.scan_iter(f"{prefix}:*", count=10_000):
            redis_client.delete(key)
