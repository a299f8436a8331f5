"""Reservation rules found wanting in review, on the real Redis: a request_id is bound to what it reserved,
abandoned holds never deny, an estimate is never below the org's floor, a model without a price is
refused under a hard cap, and every Redis error answers by the org's policy."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enforcement.budget_store import apply_budgets
from enforcement.client import CapClient
from enforcement.decision import Outcome
from enforcement.keys import KeyLayout
from enforcement.subject import Subject
from schemas import Budget, BudgetMode, Period, ScopeKind
from schemas.budgets import OrgConfig
from tests.deployment import free_port
from tests.enforcement.settle import Settler

pytestmark = pytest.mark.stack

ADA = Subject(org_id="acme", department_id="eng", user_id="ada", model="gpt-4o")
BOB = Subject(org_id="acme", department_id="eng", user_id="bob", model="gpt-4o")
LIMIT = 1_000_000


def fresh(client: redis.Redis, prefix: str, org: OrgConfig | None = None, limit: int = LIMIT) -> CapClient:
    for key in client.scan_iter(f"{prefix}:*", count=10_000):
        client.delete(key)
    budgets = [
        Budget("acme", ScopeKind.USER, "ada", Period.MONTHLY, limit, BudgetMode.HARD),
        Budget("acme", ScopeKind.USER, "bob", Period.MONTHLY, limit, BudgetMode.HARD),
    ]
    apply_budgets(client, KeyLayout(prefix), [org or OrgConfig("acme")], budgets)
    return CapClient(client, key_prefix=prefix, reservation_ttl_s=300)


SUBJECTS = st.sampled_from([ADA, BOB, Subject(org_id="acme", department_id="ops", user_id="ada", model="gpt-4o")])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=SUBJECTS, second=SUBJECTS, a=st.integers(2_000, 400_000), b=st.integers(2_000, 400_000))
def test_a_request_id_is_bound_to_its_subject_and_estimate(
    redis_client: redis.Redis, key_prefix: str, first: Subject, second: Subject, a: int, b: int
) -> None:
    """Reusing a request_id skipped the cap check: a user over their cap was admitted under another's id."""
    caps = fresh(redis_client, key_prefix)
    assert caps.reserve(first, "shared-id", a).allowed
    held = {s: caps.spend("acme", s)["reserved"] for s in ("user/ada", "user/bob")}
    again = caps.reserve(second, "shared-id", b)
    if (first, a) == (second, b):
        assert again.allowed and again.replayed  # a retry of the same request: idempotent
    else:
        assert not again.allowed and again.outcome is Outcome.DENIED
        assert "already holds a reservation" in again.reason
    assert {s: caps.spend("acme", s)["reserved"] for s in ("user/ada", "user/bob")} == held  # nothing more held


def test_a_user_over_the_cap_is_not_admitted_under_another_users_request_id(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    caps = fresh(redis_client, key_prefix)
    Settler(redis_client, key_prefix)(ADA, "spent-all", LIMIT)
    assert caps.reserve(BOB, "bob-1", 5_000).allowed
    for _ in range(3):
        decision = caps.reserve(ADA, "bob-1", 5_000)
        assert not decision.allowed


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(abandoned=st.integers(65, 400), hold=st.integers(2_000, 10_000))
def test_abandoned_holds_that_are_due_never_deny(
    redis_client: redis.Redis, key_prefix: str, abandoned: int, hold: int
) -> None:
    """Lazy expiry released at most 64 holds per call, so 200 abandoned ones denied a request that fit."""
    caps = fresh(redis_client, key_prefix, limit=hold * abandoned)
    for i in range(abandoned):
        assert caps.reserve(ADA, f"gone-{i}", hold).allowed
    # their proxies died: every hold is past its time (as after 300 s), none released yet
    resv, resv_exp = KeyLayout(key_prefix).reservations("acme")
    redis_client.zadd(resv_exp, {f"gone-{i}": 1 for i in range(abandoned)})
    decision = caps.reserve(ADA, "fits", hold * abandoned)  # fits only once the dead holds are gone
    assert decision.allowed, decision.reason
    assert caps.spend("acme", "user/ada")["reserved"] == hold * abandoned
    assert redis_client.hlen(resv) == 1
    assert not redis_client.exists(KeyLayout(key_prefix).denied("acme", "user/ada/monthly", "x"))


def test_an_estimate_is_never_below_the_floor(redis_client: redis.Redis, key_prefix: str) -> None:
    """A zero estimate held nothing: a user exactly at the limit was admitted."""
    caps = fresh(redis_client, key_prefix, OrgConfig("acme", min_estimate_nanos=500))
    Settler(redis_client, key_prefix)(ADA, "e1", LIMIT)
    decision = caps.reserve(ADA, "zero", 0)
    assert not decision.allowed and decision.estimate == 500
    caps = fresh(redis_client, key_prefix, OrgConfig("acme", min_estimate_nanos=500))
    decision = caps.reserve(ADA, "zero", 0)
    assert decision.allowed and caps.spend("acme", "user/ada")["reserved"] == 500


def test_a_model_without_a_price_is_refused_under_a_hard_cap_unless_the_org_allows_it(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    caps = fresh(redis_client, key_prefix)
    refused = caps.reserve(ADA, "unpriced-1", None)
    assert not refused.allowed and "has no price" in refused.reason
    assert refused.blocking is not None and refused.blocking.scope == "user/ada"
    no_cap = Subject(org_id="acme", user_id="carol", model="mystery-1")
    assert caps.reserve(no_cap, "unpriced-2", None).allowed  # no hard cap applies: nothing to protect
    caps = fresh(redis_client, key_prefix, OrgConfig("acme", unpriced_models="allow", min_estimate_nanos=700))
    allowed = caps.reserve(ADA, "unpriced-3", None)
    assert allowed.allowed and caps.spend("acme", "user/ada")["reserved"] == 700


@pytest.fixture
def replica(stack: object, tmp_path: Path) -> Iterator[redis.Redis]:
    """A read-only replica of the stack's Redis: every write answers READONLY."""
    from schemas.settings import Settings

    port = free_port()
    main = Settings().stack.redis_port
    proc = subprocess.Popen(
        [
            *(shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1"),
            *("--dir", str(tmp_path), "--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", str(main)),
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if client.info("replication").get("master_link_status") == "up":
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.1)
        yield client
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("policy", ["closed", "open"])
def test_redis_errors_other_than_connection_errors_answer_by_policy(
    replica: redis.Redis, redis_client: redis.Redis, key_prefix: str, policy: str
) -> None:
    """READONLY (a failed-over replica), OOM or MOVED escaped the fail-open/closed policy as a 500."""
    fresh(redis_client, key_prefix, OrgConfig("acme", on_redis_unavailable=policy))  # on the primary, replicated
    deadline = time.monotonic() + 10
    while not replica.exists(KeyLayout(key_prefix).org_settings("acme")) and time.monotonic() < deadline:
        time.sleep(0.05)
    caps = CapClient(replica, key_prefix=key_prefix, on_redis_unavailable=policy)
    decision = caps.reserve(ADA, "r1", 5_000)
    assert decision.outcome is (Outcome.FAIL_CLOSED if policy == "closed" else Outcome.FAIL_OPEN)
    assert decision.allowed is (policy == "open")
    assert "ReadOnlyError" in decision.reason
    oom = redis.Redis(port=replica.connection_pool.connection_kwargs["port"])
    assert oom.ping()
