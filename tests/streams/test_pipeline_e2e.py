"""The whole pipeline on the real stack: Kafka -> worker -> Redis and ClickHouse, exactly once."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, TopicPartition

from enforcement.keys import PeriodKeys
from schemas.events import encode_event
from sinks.tables import ALERT_HISTORY, AlertHistoryRow
from sinks.usage_store import UsageStore
from streams.rebuild import rebuild_with
from tests.deployment import Deployment, assert_exact, make_events

pytestmark = pytest.mark.stack


def test_events_counted_once_duplicates_ignored_and_bad_input_dead_lettered(deployment: Deployment) -> None:
    dep = deployment
    now = datetime.now(UTC)
    events = make_events(6_000, now, "e2e")
    dep.start_worker()
    dep.send(events)
    dep.wait_for(lambda: dep.ch_rows() == len(events), 120, "all events in ClickHouse")
    assert_exact(dep, events)
    # each row keeps its cost split by token type, summing to it, and the prices that applied
    db = dep.settings.clickhouse.database
    split = dep.ch().query(
        f"SELECT count(), countIf(arraySum(cost_by_type_nanos) = cost_nanos AND length(usd_per_token) = 5), "
        f"countIf(list_cost_nanos = cost_nanos) FROM {db}.usage_events"
    )
    assert split.result_rows[0] == (len(events), len(events), len(events))  # no discount in this deployment

    # The producer sends every event again: nothing may change.
    dep.send(events)
    dep.wait_for(lambda: dep.metric("spendstream_events_duplicate_total") == len(events), 120, "duplicates seen")
    assert dep.ch_rows() == len(events)
    assert_exact(dep, events)

    # 1,000 malformed events interleaved with 1,000 good ones: the good keep flowing.
    good = make_events(1_000, now, "after-bad", seed=8)
    mixed: list[tuple[bytes, bytes]] = []
    for i, event in enumerate(good):
        bad = json.loads(encode_event(event))
        kind = i % 4
        if kind == 0:
            bad["input_tokens"] = -5
        elif kind == 1:
            bad.pop("event_id")
        elif kind == 2:
            bad["org_id"] = "not:an:id"
        mixed.append((b"acme", b"{not json" if kind == 3 else json.dumps(bad).encode()))
        mixed.append((event.org_id.encode(), encode_event(event)))
    dep.send(mixed)
    dep.wait_for(lambda: dep.ch_rows() == len(events) + len(good), 120, "good events after bad ones")
    dep.wait_for(lambda: dep.metric("spendstream_events_dead_lettered_total") == 1_000, 60, "dead letters counted")
    assert_exact(dep, events + good)

    consumer = Consumer(
        {
            "bootstrap.servers": dep.settings.kafka.bootstrap,
            "group.id": "dlq-check",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(dep.topics.dlq, 0, 0)])
    letters = []
    deadline = time.monotonic() + 30
    while len(letters) < 1_000 and time.monotonic() < deadline:
        letters.extend(m for m in consumer.consume(1000, timeout=1.0) if m.error() is None)
    consumer.close()
    assert len(letters) == 1_000
    fields = {dict(m.headers())["spendstream-field"].decode() for m in letters}
    assert fields == {"$.input_tokens", "$.event_id", "$.org_id", "$"}
    for message in letters:
        headers = dict(message.headers())
        assert headers["spendstream-reason"]
        topic, partition, offset = headers["spendstream-source"].decode().rsplit(":", 2)
        assert topic == dep.topics.usage and int(offset) >= 0 and int(partition) >= 0
    originals = {m.value() for m in letters}
    assert {value for _, value in mixed[0::2]} == originals  # the original bytes, untouched

    consumed = dep.metric("spendstream_events_consumed_total")
    applied = dep.metric("spendstream_events_applied_total")
    duplicates = dep.metric("spendstream_events_duplicate_total")
    dead = dep.metric("spendstream_events_dead_lettered_total")
    assert consumed == applied + duplicates + dead  # conservation


def test_worker_killed_mid_stream_restarts_exact(deployment: Deployment) -> None:
    dep = deployment
    now = datetime.now(UTC)
    events = make_events(30_000, now, "kill")
    worker = dep.start_worker()
    dep.send(events[:15_000])
    dep.wait_for(lambda: (dep.metric("spendstream_events_consumed_total") or 0) >= 5_000, 120, "some progress")
    dep.kill_worker(worker)  # SIGKILL: no flush, no commit
    dep.send(events[15_000:])
    dep.start_worker()
    dep.wait_for(lambda: dep.ch_rows() == len(events), 180, "every event in ClickHouse after the restart")
    time.sleep(1.0)
    assert dep.ch_rows() == len(events)
    assert_exact(dep, events)


def test_rebuild_restores_every_counter(deployment: Deployment) -> None:
    dep = deployment
    now = datetime.now(UTC)
    events = make_events(5_000, now, "rebuild")
    worker = dep.start_worker()
    dep.send(events)
    dep.wait_for(lambda: dep.ch_rows() == len(events), 120, "all events in ClickHouse")
    dep.kill_worker(worker)
    drift = dep.cli("drift")
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert {line.split()[0]: line.split()[1] for line in drift.stdout.splitlines()} == {
        "acme": "0",
        "globex": "0",
        "initech": "0",
    }
    client = dep.redis()
    monthly = dep.layout.spent("acme", PeriodKeys.at(now, "UTC"))[2]
    client.hincrby(monthly, "org/acme", 5)
    drifted = dep.cli("drift")
    assert drifted.returncode == 1 and any(line.split()[:2] == ["acme", "5"] for line in drifted.stdout.splitlines())
    client.hincrby(monthly, "org/acme", -5)
    prefix = dep.settings.redis.key_prefix
    before = {key: client.hgetall(key) for key in client.scan_iter(f"{prefix}:*:spent:*")}

    def settings_of() -> dict[bytes, dict[bytes, bytes]]:
        """Each org's settings; "loaded" must be there, whatever epoch it names."""
        out = {}
        for key in client.scan_iter(f"{prefix}:*:org"):
            settings = client.hgetall(key)
            assert settings.pop(b"loaded", None), key
            out[key] = settings
        return out

    budgets_before = settings_of()
    assert before
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    result = dep.cli("rebuild")
    assert result.returncode == 0, result.stderr
    after = {key: client.hgetall(key) for key in client.scan_iter(f"{prefix}:*:spent:*")}
    assert after == before
    assert settings_of() == budgets_before
    # The duplicate window and the watermarks came back too: a resend changes nothing.
    dep.start_worker()
    dep.send(events[:500])
    dep.wait_for(lambda: (dep.metric("spendstream_events_duplicate_total") or 0) == 500, 60, "duplicates seen")
    assert {key: client.hgetall(key) for key in client.scan_iter(f"{prefix}:*:spent:*")} == before
    assert dep.ch_rows() == len(events)


def test_rebuild_gives_the_ledger_back_before_caps_are_enforced(deployment: Deployment) -> None:
    """An enforced cap queues its first denial again (Redis lost the mark), and the alert it becomes must
    find the delivery that went out before the loss: the ledger is back before any org is loaded."""
    dep = deployment
    store = UsageStore.of(dep.settings.clickhouse)
    store.migrate()
    now = datetime.now(UTC)
    row = AlertHistoryRow(
        now, "acme", "key", "cap_denied", "user/u1", "2026-11-30", 0, "ops", "slack", "#ops", "sent", 1, "", 5, "d1"
    )
    store.insert(ALERT_HISTORY, [row])
    client = dep.redis()
    sent = dep.layout.alert_sent("acme", "d1")
    seen_when_enforced: list[bool] = []
    rebuild_with(dep.settings, client, store, now, on_caps=lambda: seen_when_enforced.append(bool(client.get(sent))))
    assert seen_when_enforced == [True]
    assert client.get(sent) == b"sent"
