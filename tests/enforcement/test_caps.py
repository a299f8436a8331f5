"""reserve / release on the real Redis, with spend settled by the stream's own script."""

import time
from datetime import UTC, datetime

import pytest
import redis

from enforcement.budget_store import apply_budgets
from enforcement.client import CapClient, CapUnavailableError
from enforcement.decision import Outcome
from enforcement.keys import KeyLayout
from enforcement.subject import Subject
from schemas.budget_file import parse_budget_file
from schemas.budgets import OrgConfig
from tests.enforcement.settle import Settler

USD = 1_000_000_000
ADA = Subject(org_id="acme", department_id="eng", user_id="ada", feature="chat", model="gpt-4o")
BOB = Subject(org_id="acme", department_id="eng", user_id="bob", feature="chat", model="gpt-4o")

BUDGETS = """
orgs: {acme: {timezone: Europe/Berlin}}
budgets:
  - {org: acme, scope: org, period: monthly, limit: "10.00", mode: hard}
  - {org: acme, scope: department, id: eng, period: daily, limit: "1.00", mode: hard}
  - {org: acme, scope: user, id: ada, period: monthly, limit: "0.60", mode: hard}
  - {org: acme, scope: model, id: gpt-4o, period: weekly, limit: "100", mode: soft, stages: [1, 50]}
"""


@pytest.fixture
def settle(redis_client: redis.Redis, key_prefix: str) -> Settler:
    return Settler(redis_client, key_prefix)


@pytest.fixture
def caps(redis_client: redis.Redis, key_prefix: str) -> CapClient:
    parsed = parse_budget_file(BUDGETS)
    apply_budgets(redis_client, KeyLayout(key_prefix), parsed.orgs.values(), parsed.budgets)
    return CapClient(redis_client, key_prefix=key_prefix, reservation_ttl_s=1)


def test_admits_within_caps_and_holds_the_estimate(caps: CapClient) -> None:
    decision = caps.reserve(ADA, "r1", USD // 2)
    assert decision.allowed and decision.outcome is Outcome.ALLOWED
    assert decision.remaining == {
        "org/acme/monthly": 10 * USD - USD // 2,
        "department/eng/daily": USD // 2,
        "user/ada/monthly": USD * 6 // 10 - USD // 2,
        "model/gpt-4o/weekly": 100 * USD,  # soft budgets hold nothing
    }
    assert caps.spend("acme", "user/ada")["reserved"] == USD // 2


def test_denial_names_scope_limit_spent_reserved_and_reset(caps: CapClient) -> None:
    assert caps.reserve(ADA, "r1", USD // 2).allowed
    denied = caps.reserve(ADA, "r2", USD // 5)
    assert not denied.allowed and denied.outcome is Outcome.DENIED
    blocking = denied.blocking
    assert blocking is not None
    assert (blocking.scope, blocking.period, blocking.limit, blocking.spent, blocking.reserved) == (
        "user/ada",
        "monthly",
        6 * USD // 10,
        0,
        USD // 2,
    )
    start_of_next_month_berlin = datetime(2024, 1, 1, tzinfo=UTC)  # any month: the reset is a month boundary
    assert blocking.resets_at_ms > int(start_of_next_month_berlin.timestamp() * 1000)
    assert "user/ada monthly hard cap" in denied.reason
    # Bob is in the same department but has no user cap: the department still has room.
    assert caps.reserve(BOB, "r3", USD // 5).allowed
    # ... until the department's daily cap is reached.
    denied_bob = caps.reserve(BOB, "r4", USD // 2)
    assert denied_bob.blocking is not None and denied_bob.blocking.scope == "department/eng"


def test_settle_replaces_the_reservation_once(caps: CapClient, settle: Settler) -> None:
    assert caps.reserve(ADA, "r1", USD // 2).allowed
    first = settle(ADA, "e1", USD // 10, request_id="r1")
    assert first.applied and first.released_reservation
    again = settle(ADA, "e1", USD // 10, request_id="r1")
    assert again.duplicate and not again.applied
    spend = caps.spend("acme", "user/ada")
    assert spend == {"daily": USD // 10, "weekly": USD // 10, "monthly": USD // 10, "reserved": 0}
    assert caps.spend("acme", "org/acme")["monthly"] == USD // 10
    assert caps.spend("acme", "feature/chat")["monthly"] == USD // 10


def test_settle_without_reservation_counts_once(caps: CapClient, settle: Settler) -> None:
    assert settle(ADA, "e9", 7, request_id="never-reserved").applied
    assert settle(ADA, "e9", 7, request_id="never-reserved").duplicate
    assert settle(ADA, "e9", 7).duplicate
    assert caps.spend("acme", "user/ada")["monthly"] == 7


def test_release_is_idempotent(caps: CapClient) -> None:
    assert caps.reserve(ADA, "r1", USD // 2).allowed
    assert caps.release("acme", "r1") is True
    assert caps.release("acme", "r1") is False
    assert caps.spend("acme", "user/ada")["reserved"] == 0
    assert caps.reserve(ADA, "r2", USD // 2).allowed


def test_replayed_reserve_holds_once(caps: CapClient) -> None:
    assert caps.reserve(ADA, "r1", USD // 2).allowed
    replay = caps.reserve(ADA, "r1", USD // 2)
    assert replay.allowed and replay.replayed
    assert caps.spend("acme", "user/ada")["reserved"] == USD // 2


def test_abandoned_reservations_expire_without_a_sweeper(
    caps: CapClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    assert caps.reserve(ADA, "r1", USD // 2).allowed
    assert not caps.reserve(ADA, "r2", USD // 2).allowed
    time.sleep(1.1)
    assert caps.reserve(ADA, "r3", USD // 2).allowed  # r1 expired inside this call
    stats = redis_client.hgetall(f"{key_prefix}:{{acme}}:stats")
    assert int(stats[b"expired"]) == 1
    assert redis_client.hexists(f"{key_prefix}:{{acme}}:resv", "r1") is False


def test_stage_crossings_fire_once_per_scope_and_period(caps: CapClient, settle: Settler) -> None:
    crossed = settle(ADA, "e1", USD * 3 // 10, request_id=None).crossings  # 0.30 of user's 0.60 = 50 %
    assert {(c.scope, c.period, c.stage) for c in crossed} == {("user/ada", "monthly", 50)}
    assert settle(ADA, "e1", USD * 3 // 10).crossings == ()  # duplicate: nothing
    later = settle(ADA, "e2", USD * 2 // 10).crossings  # user 0.50 of 0.60, department 0.50 of 1.00
    assert {(c.scope, c.stage, c.spent) for c in later} == {
        ("user/ada", 80, USD // 2),
        ("department/eng", 50, USD // 2),
    }
    assert settle(ADA, "e3", USD * 2 // 10).crossings[0].stage == 100  # user 0.70: over its cap
    big = settle(ADA, "e4", USD * 20).crossings  # one event crossing every remaining stage at once
    assert {(c.scope, c.stage) for c in big} == {
        ("org/acme", 50),
        ("org/acme", 80),
        ("org/acme", 100),
        ("department/eng", 80),
        ("department/eng", 100),
        ("model/gpt-4o", 1),
    }


def test_unbudgeted_subject_is_admitted_and_metered(
    caps: CapClient, settle: Settler, redis_client: redis.Redis, key_prefix: str
) -> None:
    other = Subject(org_id="globex", user_id="zed")
    apply_budgets(redis_client, KeyLayout(key_prefix), [OrgConfig("globex")], [])  # configured, with no budget
    decision = caps.reserve(other, "g1", 10**12)
    assert decision.allowed and decision.budgets == () and decision.reason == "no budget applies"
    assert settle(other, "ge1", 42, request_id="g1").applied
    assert caps.spend("globex", "org/globex")["monthly"] == 42


def test_bad_input_changes_nothing(caps: CapClient, redis_client: redis.Redis, key_prefix: str) -> None:
    from enforcement.subject import SubjectError

    before = sorted(redis_client.scan_iter(f"{key_prefix}:*"))
    for bad in (
        lambda: caps.reserve(ADA, "r:1", 5),
        lambda: caps.reserve(ADA, "r1", -5),
        lambda: caps.reserve(ADA, "r1", 10**30),
        lambda: caps.release("acme", "{r1}"),
    ):
        with pytest.raises(SubjectError):
            bad()
    assert sorted(redis_client.scan_iter(f"{key_prefix}:*")) == before


def test_unreachable_redis_fails_closed_by_default_and_open_when_asked() -> None:
    closed = CapClient.from_url("redis://127.0.0.1:1/0", timeout_s=0.05)
    decision = closed.reserve(ADA, "r1", 5)
    assert (decision.allowed, decision.outcome) == (False, Outcome.FAIL_CLOSED)
    assert "Redis unavailable" in decision.reason
    opened = CapClient.from_url("redis://127.0.0.1:1/0", timeout_s=0.05, on_redis_unavailable="open")
    decision = opened.reserve(ADA, "r1", 5)
    assert (decision.allowed, decision.outcome) == (True, Outcome.FAIL_OPEN)
    with pytest.raises(CapUnavailableError):
        opened.release("acme", "r1")


def test_lost_state_is_never_no_budget(
    caps: CapClient, settle: Settler, redis_client: redis.Redis, key_prefix: str
) -> None:
    """After Redis lost its data a reserve was admitted with "no budget applies": now the org's policy answers,
    saying the state is not loaded, until the state is restored."""
    settle(ADA, "spent", USD * 6 // 10)  # ada is at her cap
    assert not caps.reserve(ADA, "r1", USD // 100).allowed
    layout = KeyLayout(key_prefix)
    for key in redis_client.scan_iter(f"{key_prefix}:*", count=10_000):  # Redis restarted without its data
        redis_client.delete(key)
    lost = caps.reserve(ADA, "r2", USD // 100)
    assert (lost.allowed, lost.outcome) == (False, Outcome.FAIL_CLOSED)
    assert "not loaded" in lost.reason and "no budget" not in lost.reason
    # an org whose policy is open is admitted, and told why
    redis_client.hset(layout.org_settings("acme"), "on_redis_unavailable", "open")  # settings back, state not yet
    opened = CapClient(redis_client, key_prefix=key_prefix).reserve(ADA, "r3", USD // 100)
    assert (opened.allowed, opened.outcome) == (True, Outcome.FAIL_OPEN) and "not loaded" in opened.reason


def test_an_org_no_one_configured_is_told_from_one_whose_state_was_lost(
    caps: CapClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    """Adding the hook to a proxy with many teams denied every team without a budgets entry: an org that
    was never configured read as lost state. Redis's restore marker tells the two apart."""
    from enforcement.redis_clients import run_id

    layout = KeyLayout(key_prefix)
    initech = Subject(org_id="initech", user_id="carol")
    redis_client.hset(layout.state(), "run_id", run_id(redis_client.info("server")))  # Redis's state is whole
    admitted = caps.reserve(initech, "r1", USD // 100)
    assert (admitted.allowed, admitted.outcome) == (True, Outcome.UNCONFIGURED)
    assert "initech has no budgets configured" in admitted.reason
    strict = CapClient(redis_client, key_prefix=key_prefix, unknown_orgs="deny")
    refused = strict.reserve(initech, "r2", USD // 100)
    assert (refused.allowed, refused.outcome) == (False, Outcome.UNKNOWN_ORG)
    assert "initech is not configured, and this deployment refuses unknown orgs" in refused.reason
    # the worker counted its spend and marked it unconfigured: still refused when unknown orgs are
    redis_client.hset(layout.org_settings("initech"), mapping={"tz": "UTC", "loaded": "unconfigured"})
    assert strict.reserve(initech, "r3", USD // 100).outcome is Outcome.UNKNOWN_ORG
    assert CapClient(redis_client, key_prefix=key_prefix).reserve(initech, "r4", USD // 100).allowed
    # Redis lost its data (the marker with it): the configured org answers by its policy at once
    for key in redis_client.scan_iter(f"{key_prefix}:*", count=10_000):
        redis_client.delete(key)
    lost = caps.reserve(ADA, "r5", USD // 100)
    assert (lost.allowed, lost.outcome) == (False, Outcome.FAIL_CLOSED) and "not loaded" in lost.reason
