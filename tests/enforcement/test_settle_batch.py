"""A settle batch writes what the same events settled one call at a time write, on the real Redis.

SETTLE gathers a batch's counter increments, watermarks and expiries and writes them once at the end;
these tests hold it to the one-event-at-a-time result: every reply (outcomes, released reservations,
stage crossings with the spend after each), every key and field, and which keys expire."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from enforcement import core
from enforcement.budget_store import apply_budgets
from enforcement.client import CapClient
from enforcement.keys import KeyLayout, PeriodKeys
from enforcement.scripts import SETTLE
from enforcement.subject import Subject
from schemas.budget_file import parse_budget_file
from schemas.settings import Settings

pytestmark = pytest.mark.stack

BUDGETS = """
budgets:
  - {org: acme, scope: org, period: monthly, limit: "0.5", mode: soft, stages: [10, 50, 100]}
  - {org: acme, scope: department, id: eng, period: daily, limit: "0.2", mode: hard, stages: [25, 80, 100]}
  - {org: acme, scope: user, id: ada, period: monthly, limit: "0.05", mode: hard}
  - {org: acme, scope: user, id: bob, period: weekly, limit: "0.1", mode: soft, stages: [50, 100]}
"""
SUBJECTS = [
    Subject.unchecked("acme", "ada", "eng", "chat", "gpt-4o", "openai"),
    Subject.unchecked("acme", "bob", "eng", "search", "gpt-4o-mini", "openai"),
    Subject.unchecked("acme", "cy", "ops", "chat", "claude", "anthropic"),
]


@pytest.fixture
def client(stack: Settings) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(stack.redis.url)
    yield connection
    for key in connection.scan_iter("sb-*", count=10_000):  # every deployment these tests made
        connection.delete(key)
    connection.close()


def deployment(client: redis.Redis) -> KeyLayout:
    layout = KeyLayout(f"sb-{random.randrange(16**12):012x}")
    parsed = parse_budget_file(BUDGETS)
    apply_budgets(client, layout, parsed.orgs.values(), parsed.budgets)
    return layout


def events(seed: int, now: datetime) -> list[core.SettleItem]:
    """Events of one org over two days and three partitions, with duplicates (another offset, or none:
    a proxy's direct settle) and redeliveries (the same offset again), some settling a reservation."""
    rng = random.Random(seed)
    items: list[core.SettleItem] = []
    offsets = {0: 0, 1: 0, 2: 0}
    for i in range(120):
        when = now - timedelta(days=rng.choice((0, 0, 0, 1)), minutes=rng.randrange(60))
        roll = rng.random()
        if items and roll < 0.1:  # the same event again from another offset, or from a proxy
            again = rng.choice(items)
            partition = rng.choice((None, 0, 1, 2))
            offset = None if partition is None else offsets[partition]
            if partition is not None:
                offsets[partition] += 1
            items.append(
                core.SettleItem(
                    again.subject, again.event_id, again.occurred_at, again.cost, again.periods, None, partition, offset
                )
            )
            continue
        if items and roll < 0.15:  # a redelivery: the very record again
            items.append(rng.choice([item for item in items if item.partition is not None] or items))
            continue
        partition = rng.choice((0, 1, 2))
        subject = rng.choice(SUBJECTS)
        items.append(
            core.SettleItem(
                subject,
                f"e{i}",
                when,
                rng.choice((0, 1, 700_000, 3_000_000, 9_000_000)),
                PeriodKeys.at(when, "UTC"),
                f"r{i}" if rng.random() < 0.3 else None,
                partition,
                offsets[partition],
            )
        )
        offsets[partition] += 1
    return items


def reserve_for(client: redis.Redis, layout: KeyLayout, items: list[core.SettleItem]) -> None:
    caps = CapClient(client, key_prefix=layout.prefix)
    for item in items:
        if item.request_id is not None:
            caps.reserve(item.subject, item.request_id, 1_000)


def content(client: redis.Redis, layout: KeyLayout) -> dict[str, Any]:
    """Every key of the deployment without its prefix: its fields, and whether it expires."""
    out: dict[str, Any] = {}
    for key in client.scan_iter(f"{layout.prefix}:*", count=10_000):
        name = key.decode().split(":", 1)[1]
        kind = client.type(key)
        if kind == b"hash":
            value: Any = client.hgetall(key)
        else:
            value = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        out[name] = (value, client.ttl(key) > 0)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_batch_writes_what_one_event_at_a_time_writes(client: redis.Redis, seed: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    items = events(seed, now)
    script = client.register_script(SETTLE)
    batched, single = deployment(client), deployment(client)
    reserve_for(client, batched, items)
    reserve_for(client, single, items)

    replies = core.parse_settle_batch(script(**_call(core.settle_batch_call(batched, items))))
    one_by_one = [core.parse_settle_batch(script(**_call(core.settle_batch_call(single, [item]))))[0] for item in items]
    assert replies == one_by_one
    assert sum(len(r.crossings) for r in replies) >= 3  # stages were crossed mid-batch
    assert (
        any(r.stale for r in replies)
        and any(r.duplicate for r in replies)
        and any(r.released_reservation for r in replies)
    )
    assert content(client, batched) == content(client, single)
    # and both are right: each month's org counter holds the cost of every distinct event in it, once
    expected: dict[str, int] = {}
    for item in {item.event_id: item for item in items}.values():
        month = batched.spent("acme", item.periods)[2]
        expected[month] = expected.get(month, 0) + item.cost
    assert expected and {month: int(client.hget(month, "org/acme") or 0) for month in expected} == expected


def test_a_stage_reached_late_in_a_batch_keeps_its_expiry(client: redis.Redis) -> None:
    """The first event of the batch crosses nothing; a later one writes the stages key: it expires."""
    now = datetime.now(UTC)
    layout = deployment(client)
    periods = PeriodKeys.at(now, "UTC")
    ada = SUBJECTS[0]
    items = [core.SettleItem(ada, f"late{i}", now, 10_000_000, periods, None, 0, i) for i in range(3)]
    results = core.parse_settle_batch(client.register_script(SETTLE)(**_call(core.settle_batch_call(layout, items))))
    assert not results[0].crossings and sum(len(r.crossings) for r in results) > 0
    stages = layout.stages("acme", periods)
    assert client.exists(stages) and client.ttl(stages) > 0


def test_a_batch_sums_costs_past_what_a_double_holds_exactly(client: redis.Redis) -> None:
    """Events at the largest cost a settle takes, by two users who share a feature: the counters hold
    their exact sum, whether a budget follows them event by event (org/acme monthly) or not (the rest,
    summed per subject and then spread)."""
    now = datetime.now(UTC)
    layout = deployment(client)
    periods = PeriodKeys.at(now, "UTC")
    cost = core.MAX_SAFE_NANOS
    ada, cy = SUBJECTS[0], SUBJECTS[2]
    items = [core.SettleItem((cy, ada)[i % 2], f"big{i}", now, cost, periods, None, 1, i) for i in range(24)]
    client.register_script(SETTLE)(**_call(core.settle_batch_call(layout, items)))
    day, _, month = layout.spent("acme", periods)
    assert int(client.hget(day, "user/cy") or 0) == 12 * cost
    assert int(client.hget(day, "feature/chat") or 0) == 24 * cost
    assert int(client.hget(month, "org/acme") or 0) == 24 * cost


def _call(call: core.ScriptCall) -> dict[str, Any]:
    return {"keys": call.keys, "args": call.args}
