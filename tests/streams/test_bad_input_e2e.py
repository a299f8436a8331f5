"""Hostile and malformed records among valid events, through a real worker: the stream never stops.

Every bad record lands in usage.dlq with a machine-readable reason and field (a record too large for
the topic is dead-lettered by reference), every valid event is counted once, conservation holds, an
unpriced model raises an alert, and the worker still stops promptly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from schemas.config_records import prices_overrides_record
from schemas.events import encode_event
from tests.deployment import PRICES, Deployment, assert_exact, make_events, records_of

pytestmark = pytest.mark.stack

# a price whose unit was forgotten: USD per million written as USD per token
FORGOT_UNIT = """
  - {provider: openai, model: forgot-unit, effective_from: 2020-01-01T00:00:00Z, input: 2.50, output: 10.00}
"""


def test_bad_input_among_valid_events_never_stops_the_stream(deployment: Deployment) -> None:
    dep = deployment
    record = prices_overrides_record(PRICES.replace("prices:\n", "prices:\n" + FORGOT_UNIT.strip("\n") + "\n", 1))
    producer = dep.producer()
    producer.produce(dep.topics.config, key=record.key.encode(), value=record.value)
    assert producer.flush(30) == 0
    dep.start_worker()
    now = datetime.now(UTC)
    valid = make_events(3_000, now, "valid")
    template = json.loads(encode_event(valid[0]))

    def bad(**changes: object) -> bytes:
        return json.dumps({**template, "event_id": f"bad-{len(hostile)}", **changes}).encode()

    hostile: list[tuple[bytes | None, str]] = []
    hostile.append((bad(feature="f" * 900_000), "$"))  # a valid event of 900 KB: far beyond the 64 KB allowed
    hostile.append((bad(input_tokens=2**63), "$.input_tokens"))
    hostile.append((bad(output_tokens=-1), "$.output_tokens"))
    hostile.append((bad(org_id="acme\n"), "$.org_id"))
    hostile.append((bad(model="gpt-4o\n"), "$.model"))
    hostile.append((bad(user_id="ada:{x}"), "$.user_id"))
    hostile.append((bad(colour="red"), "$.colour"))
    hostile.append((bad(occurred_at=(now + timedelta(days=3)).isoformat()), "$.occurred_at"))
    hostile.append((bad(occurred_at="1999-01-01T00:00:00Z"), "$.occurred_at"))
    hostile.append((bad(model="forgot-unit", input_tokens=1_000_000, cache_read_tokens=0), "$.cost"))
    hostile.append((b"\xff\xfe\xfa not utf-8 at all", "$"))
    hostile.append((b"[1, 2, 3]", "$"))
    hostile.append((b'"just a string"', "$"))
    hostile.append((b"{truncated", "$"))
    hostile.append((None, "$"))  # a tombstone
    unpriced = msgspec.structs.replace(valid[1], event_id="mystery-1", model="mystery-9000")

    mixed: list[tuple[bytes, bytes | None]] = []
    for i, event in enumerate(valid):
        mixed.append((event.org_id.encode(), encode_event(event)))
        if i % 200 == 0 and i // 200 < len(hostile):
            mixed.append((b"acme", hostile[i // 200][0]))
    mixed.append((b"acme", encode_event(unpriced)))
    dep.send(mixed)  # type: ignore[arg-type]

    counted = len(valid) + 1  # the unpriced event is valid: counted at zero, and alerted
    dep.wait_for(lambda: dep.ch_rows() == counted, 120, "every valid event in ClickHouse")
    dep.wait_for(lambda: dep.metric("spendstream_events_dead_lettered_total") == len(hostile), 60, "dead letters")
    assert_exact(dep, [*valid, unpriced])
    consumed = dep.metric("spendstream_events_consumed_total")
    applied = dep.metric("spendstream_events_applied_total")
    duplicates = dep.metric("spendstream_events_duplicate_total") or 0
    assert consumed == applied + duplicates + len(hostile) == len(mixed)

    letters = records_of(dep, dep.topics.dlq)
    assert len(letters) == len(hostile)
    by_field = sorted(headers["spendstream-field"].decode() for _, headers in letters)
    assert by_field == sorted(field for _, field in hostile)
    for _, headers in letters:
        assert headers["spendstream-reason"] and headers["spendstream-source"].startswith(dep.topics.usage.encode())
    [big] = [(v, h) for v, h in letters if h.get("spendstream-truncated")]
    assert int(big[1]["spendstream-original-bytes"]) > 900_000 and len(big[0] or b"") == 16 * 1024
    [cost] = [h for _, h in letters if h["spendstream-field"] == b"$.cost"]
    assert b"per million" in cost["spendstream-reason"]

    alerts = [json.loads(v or b"{}") for v, _ in records_of(dep, dep.topics.alerts)]
    assert [a["scope"] for a in alerts if a["kind"] == "unpriced"] == ["model/mystery-9000"]
    assert dep.metric("spendstream_events_unpriced_total") == 1

    worker = dep.workers[0]
    assert worker.poll() is None  # still running
    worker.send_signal(signal.SIGTERM)
    try:
        assert worker.wait(timeout=30) == 0  # stops promptly, and cleanly
    except subprocess.TimeoutExpired:
        raise AssertionError("the worker ignored SIGTERM for 30 s") from None
