"""One event is counted once: whatever offset its time is written in, whenever it arrives again, and after a
rebuild lowered the offset watermark, on the real Redis with the settle script the worker runs."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enforcement.core import DUPLICATE_WINDOW_S, NO_DIGEST
from enforcement.keys import KeyLayout, PeriodKeys, fingerprint
from enforcement.settle_script import SEEN_GENERATIONS
from enforcement.subject import Subject
from tests.enforcement.settle import Settler

pytestmark = pytest.mark.stack

ADA = Subject(org_id="acme", department_id="eng", user_id="ada")
OFFSETS_SEEN = itertools.count(1)  # the stream's offsets only grow, across examples too
# every offset in use, in quarter hours, from UTC-12:00 to UTC+14:00
OFFSETS = st.integers(-48, 56).map(lambda q: timezone(timedelta(minutes=15 * q)))
# instants within a minute of an hour boundary, in the last day: where a bucket by the hour as written splits
NEAR_BOUNDARIES = st.builds(
    lambda hours, seconds: (
        datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        - timedelta(hours=hours)
        + timedelta(seconds=seconds)
    ),
    st.integers(1, 20),
    st.integers(-60, 60),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=NEAR_BOUNDARIES, first=OFFSETS, second=OFFSETS, partitions=st.tuples(st.integers(0, 7), st.integers(0, 7)))
def test_one_instant_in_any_offset_is_one_event(
    redis_client: redis.Redis, key_prefix: str, at: datetime, first: timezone, second: timezone, partitions: tuple
) -> None:
    """The duplicate window was keyed by the hour as written: 11:59:30+02:00 and 09:59:30Z were two events."""
    settle = Settler(redis_client, key_prefix)
    event_id = f"evt-{next(OFFSETS_SEEN)}"  # one event per example
    one = settle(
        ADA, event_id, 1_000, occurred_at=at.astimezone(first), partition=partitions[0], offset=next(OFFSETS_SEEN)
    )
    again = settle(
        ADA, event_id, 1_000, occurred_at=at.astimezone(second), partition=partitions[1], offset=next(OFFSETS_SEEN)
    )
    assert one.applied and not one.duplicate
    assert again.duplicate and not again.applied and not again.sink
    spent = redis_client.hget(KeyLayout(key_prefix).spent("acme", PeriodKeys.at(at, "UTC"))[2], "user/ada")
    assert int(spent or 0) % 1_000 == 0  # (other examples share the month counter; each adds 1,000 once)


def test_a_producer_resend_much_later_is_still_a_duplicate(redis_client: redis.Redis, key_prefix: str) -> None:
    """The window runs from the event's arrival by Redis's clock, whatever instant it carries."""
    settle = Settler(redis_client, key_prefix)
    late = datetime.now(UTC) - timedelta(days=3)  # a late event: its hour ended long ago
    assert settle(ADA, "late-1", 5, occurred_at=late, partition=0, offset=1).applied
    layout = KeyLayout(key_prefix)
    span = DUPLICATE_WINDOW_S // SEEN_GENERATIONS
    generation = int(redis_client.time()[0]) // span
    ttl = redis_client.ttl(layout.seen_generation("acme", fingerprint("late-1"), generation))
    # kept while SETTLE looks in its generation: at least one window from now, at most one and a half
    assert DUPLICATE_WINDOW_S < ttl <= DUPLICATE_WINDOW_S + span
    assert settle(
        ADA, "late-1", 5, occurred_at=late.astimezone(timezone(timedelta(hours=5))), partition=0, offset=2
    ).duplicate


def test_a_redelivery_after_a_rebuild_lowered_the_watermark_is_counted(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """A rebuild from ClickHouse (which lacked the event) lowered the watermark and the counters; the event's
    redelivery was then taken for a duplicate of itself and ended up in neither Redis nor ClickHouse."""
    settle = Settler(redis_client, key_prefix)
    layout = KeyLayout(key_prefix)
    at = datetime.now(UTC)
    assert settle(ADA, "in-flight", 300, occurred_at=at, partition=3, offset=100).applied
    # the rebuild: ClickHouse's highest offset for partition 3 is 90, and its sums lack the event
    redis_client.hset(layout.watermarks("acme"), "3", 90)
    for key in layout.spent("acme", PeriodKeys.at(at, "UTC")):
        redis_client.hincrby(key, "user/ada", -300)
    redelivered = settle(ADA, "in-flight", 300, occurred_at=at, partition=3, offset=100)
    assert redelivered.applied and redelivered.sink  # counted again, and stored
    assert int(redis_client.hget(layout.spent("acme", PeriodKeys.at(at, "UTC"))[2], "user/ada") or 0) == 300
    # a genuine second copy (another offset) is still a duplicate, and a redelivery of the same offset too
    assert settle(ADA, "in-flight", 300, occurred_at=at, partition=3, offset=101).duplicate
    assert settle(ADA, "in-flight", 300, occurred_at=at, partition=3, offset=100).stale


def digest_of(at: datetime, cost: int, user: str = "ada") -> bytes:
    """The content digest the worker computes, for an event of ``user`` at ``at`` costing ``cost``."""
    from schemas.events import UsageEvent
    from sinks.usage_rows import content_digest, usage_row

    event = UsageEvent(
        event_id="x", occurred_at=at, org_id="acme", user_id=user, feature="chat", provider="openai", model="gpt-4o"
    )
    return content_digest(usage_row(event, cost, "catalogue", 0, 0))


RETRIES = st.lists(
    st.tuples(
        st.integers(-3_600_000, 3_600_000),  # how far (ms) the retry's stamp is from the first's
        st.integers(0, 7),  # its partition
        st.booleans(),  # the same stamp and cost (a resend), or built again (a re-stamped retry)
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=NEAR_BOUNDARIES, days=st.integers(0, 1), zone=OFFSETS, retries=RETRIES)
def test_a_retried_event_is_charged_once_whatever_its_timestamp(
    redis_client: redis.Redis,
    key_prefix: str,
    at: datetime,
    days: int,
    zone: timezone,
    retries: list[tuple[int, int, bool]],
) -> None:
    """A producer that builds the event again on retry stamps it anew: the same event_id at 11:59:59.9Z and
    12:00:00.2Z was charged twice. Copies are found by (org, event_id) alone: one that repeats the first is
    a duplicate, one whose content differs is a conflict naming the first; neither is charged."""
    settle = Settler(redis_client, key_prefix)
    layout = KeyLayout(key_prefix)
    first_at = (at - timedelta(days=days)).astimezone(zone)
    event_id = f"retry-{next(OFFSETS_SEEN)}"
    first_offset = next(OFFSETS_SEEN)
    before = _user_total(redis_client, layout, first_at)
    one = settle(ADA, event_id, 700, occurred_at=first_at, partition=2, offset=first_offset,
                 digest=digest_of(first_at, 700))  # fmt: skip
    assert one.applied and one.sink
    for shift_ms, partition, resend in retries:
        stamp = first_at if resend else first_at + timedelta(milliseconds=shift_ms)
        copy = settle(ADA, event_id, 700, occurred_at=stamp, partition=partition, offset=next(OFFSETS_SEEN),
                      digest=digest_of(stamp, 700))  # fmt: skip
        assert not copy.applied and not copy.sink
        if stamp == first_at:
            assert copy.duplicate and copy.conflict_with is None
        else:
            assert copy.conflict_with == f"2:{first_offset}" and not copy.duplicate
    assert _user_total(redis_client, layout, first_at) - before == 700  # charged once, in the first's month


def _user_total(client: redis.Redis, layout: KeyLayout, at: datetime) -> int:
    return int(client.hget(layout.spent("acme", PeriodKeys.at(at, "UTC"))[2], "user/ada") or 0)


def test_a_copy_is_found_in_the_previous_generation_and_a_conflict_is_said_again_on_redelivery(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    settle = Settler(redis_client, key_prefix)
    layout = KeyLayout(key_prefix)
    now = datetime.now(UTC)
    generation = int(redis_client.time()[0]) // (DUPLICATE_WINDOW_S // SEEN_GENERATIONS)
    # the first copy arrived most of a window ago (the oldest generation looked in), from partition 1 offset 10
    yesterday = layout.seen_generation("acme", fingerprint("gen-1"), generation - SEEN_GENERATIONS)
    redis_client.hset(yesterday, fingerprint("gen-1"), digest_of(now, 5) + b"1:10")
    assert settle(ADA, "gen-1", 5, occurred_at=now, partition=1, offset=20, digest=digest_of(now, 5)).duplicate
    other = settle(ADA, "gen-1", 6, occurred_at=now, partition=1, offset=21, digest=digest_of(now, 6))
    assert other.conflict_with == "1:10"
    # the same conflicting copy redelivered (its offset is below the watermark now): the conflict again,
    # so that a dead letter lost in a crash is sent; an unknown content is never a conflict
    again = settle(ADA, "gen-1", 6, occurred_at=now, partition=1, offset=21, digest=digest_of(now, 6))
    assert again.conflict_with == "1:10"
    assert settle(ADA, "gen-1", 6, occurred_at=now, partition=1, offset=22, digest=NO_DIGEST).duplicate
    assert int(redis_client.hget(layout.stats("acme"), "conflict") or 0) == 1
