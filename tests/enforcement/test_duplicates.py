"""One event is counted once: whatever offset its time is written in, whenever it arrives again, and after a
rebuild lowered the offset watermark, on the real Redis with the settle script the worker runs."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enforcement.keys import KeyLayout, PeriodKeys, Subject
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
    from enforcement.keys import fingerprint

    ttl = redis_client.ttl(layout.seen("acme", late, fingerprint("late-1")))
    assert 23 * 3600 < ttl <= 24 * 3600  # remembered for the window from now, not from its hour
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
