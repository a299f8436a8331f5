"""Retried events through the real stream (Kafka, the worker, Redis, ClickHouse), as a property over
re-stamped retries across hour and day boundaries and time zone offsets: every event_id is charged once,
Redis equals ClickHouse, a copy that repeats the first is a duplicate, and a copy whose content differs
is dead-lettered as a conflict naming where the first copy was read."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from confluent_kafka import Consumer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enforcement.keys import PeriodKeys
from schemas.events import UsageEvent, encode_event
from schemas.pricing import rate
from schemas.settings import Settings
from tests.deployment import Deployment, deployed

pytestmark = pytest.mark.stack

EXAMPLES = itertools.count(1)
NOW = datetime.now(UTC)
TOP_OF_HOUR = NOW.replace(minute=0, second=0, microsecond=0)
MIDNIGHT = NOW.replace(hour=0, minute=0, second=0, microsecond=0)

# a first copy's instant: a little before or after an hour boundary of the last day, or today's midnight
INSTANTS = st.one_of(
    st.builds(
        lambda h, ms: TOP_OF_HOUR - timedelta(hours=h, milliseconds=ms), st.integers(1, 20), st.integers(-900, 900)
    ),
    st.builds(lambda ms: MIDNIGHT + timedelta(milliseconds=ms), st.integers(-900, 900)),
)
OFFSETS = st.integers(-48, 56).map(lambda q: timezone(timedelta(minutes=15 * q)))
COPIES = st.lists(
    st.tuples(
        st.sampled_from(["resend", "restamp", "reoffset"]),  # the same bytes; a new time; the same instant elsewhere
        st.integers(1, 1_500),  # how far (ms) a re-stamped copy moves, either way
        st.booleans(),
        OFFSETS,
    ),
    max_size=3,
)


@pytest.fixture(scope="module")
def running(stack: Settings) -> Iterator[Deployment]:
    with deployed(stack) as dep:
        dep.start_worker()
        yield dep


def dead_letters(dep: Deployment) -> list[dict[str, str]]:
    consumer = Consumer(
        {"bootstrap.servers": dep.settings.kafka.bootstrap, "group.id": "retries", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(dep.topics.dlq, 0, 0)])
    letters, quiet = [], 0
    while quiet < 2:
        batch = [m for m in consumer.consume(1000, timeout=1.0) if m.error() is None]
        quiet = 0 if batch else quiet + 1
        for m in batch:
            headers = {k: v.decode() for k, v in (m.headers() or [])}
            letters.append({**headers, "event_id": json.loads(m.value())["event_id"]})
    consumer.close()
    return letters


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(firsts=st.lists(st.tuples(INSTANTS, OFFSETS, COPIES), min_size=1, max_size=12))
def test_every_event_id_is_charged_once_and_a_conflict_names_the_first_copy(
    running: Deployment, firsts: list[tuple[datetime, timezone, list[tuple[str, int, bool, timezone]]]]
) -> None:
    dep = running
    example = next(EXAMPLES)
    user = f"retry-user-{example}"
    originals, sent, conflicting = [], [], set()
    for n, (instant, offset, copies) in enumerate(firsts):
        first = UsageEvent(
            event_id=f"retry-{example}-{n}",
            occurred_at=instant.astimezone(offset),
            org_id="acme",
            user_id=user,
            feature="chat",
            provider="openai",
            model="gpt-4o",
            input_tokens=1_000 + n,
            output_tokens=100,
        )
        originals.append(first)
        sent.append(first)
        for kind, shift_ms, later, elsewhere in copies:
            if kind == "resend":
                sent.append(first)
            elif kind == "reoffset":  # the same instant written in another offset: the same content
                sent.append(_with_time(first, instant.astimezone(elsewhere)))
            else:
                moved = instant + timedelta(milliseconds=shift_ms if later else -shift_ms)
                sent.append(_with_time(first, moved.astimezone(elsewhere)))
                conflicting.add(first.event_id)
    consumed = dep.metric("spendstream_events_consumed_total") or 0
    dep.send([(b"acme", encode_event(e)) for e in sent])
    dep.wait_for(
        lambda: (dep.metric("spendstream_events_consumed_total") or 0) >= consumed + len(sent), 120, "every copy"
    )
    db = dep.settings.clickhouse.database

    def all_stored() -> bool:
        return len(dep.ch().query(f"SELECT DISTINCT event_id FROM {db}.usage_events WHERE user_id = '{user}'")
                   .result_rows) == len(originals)  # fmt: skip

    dep.wait_for(all_stored, 60, "the first copies in ClickHouse")
    stored = (
        dep.ch()
        .query(
            "SELECT event_id, count(), sum(cost_nanos), any(kafka_partition), any(kafka_offset) "
            f"FROM {db}.usage_events WHERE user_id = '{user}' GROUP BY event_id"
        )
        .result_rows
    )
    by_id = {row[0]: row for row in stored}
    catalogue = dep.catalogue
    for event in originals:
        event_id, count, cost, _, _ = by_id[event.event_id]
        assert count == 1, event_id  # charged once, whatever the copies carried
        assert cost == rate(event, catalogue).cost_nanos
    # Redis counted exactly what ClickHouse stored, in the first copies' months
    months: dict[str, int] = {}
    for event in originals:
        month = PeriodKeys.at(event.occurred_at, "UTC").month
        months[month] = months.get(month, 0) + rate(event, catalogue).cost_nanos
    client = dep.redis()
    for month, total in months.items():
        at = next(e.occurred_at for e in originals if PeriodKeys.at(e.occurred_at, "UTC").month == month)
        key = dep.layout.spent("acme", PeriodKeys.at(at, "UTC"))[2]
        assert int(client.hget(key, f"user/{user}") or 0) == total
    # every copy with another time is a conflict, dead-lettered naming the first copy's place on the topic
    mine = [letter for letter in dead_letters(dep) if letter["event_id"].startswith(f"retry-{example}-")]
    assert {letter["event_id"] for letter in mine} == conflicting
    for letter in mine:
        assert letter["spendstream-field"] == "$.event_id"
        _, _, _, partition, offset = by_id[letter["event_id"]]
        assert f"partition {partition} offset {offset} " in letter["spendstream-reason"], letter
        assert "conflicting duplicate" in letter["spendstream-reason"]


def _with_time(event: UsageEvent, at: datetime) -> UsageEvent:
    import msgspec

    return msgspec.structs.replace(event, occurred_at=at)
