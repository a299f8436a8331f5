"""10,000 malformed or hostile usage records, made by Hypothesis, among 10,000 valid events, through a worker.

Every bad record lands in usage.dlq with a reason naming its field (the field each was made to break),
every valid event is counted once, and consumed = applied + duplicates + dead-lettered."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import encode_event
from tests.deployment import Deployment, assert_exact, make_events, records_of

pytestmark = [pytest.mark.stack, pytest.mark.faults]

NOW = datetime.now(UTC)
ID_FIELDS = ("event_id", "org_id", "user_id", "department_id", "feature", "request_id", "api_key_id")
NAME_FIELDS = ("provider", "model")
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
KNOWN = {*ID_FIELDS, *NAME_FIELDS, *TOKEN_FIELDS, "occurred_at", "cost_nanos", "status", "latency_ms", "metadata"}
NOT_AN_INT = st.one_of(
    st.text(max_size=5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


def template(i: int) -> dict[str, Any]:
    return {
        "event_id": f"bad-{i}",
        "occurred_at": NOW.isoformat(),
        "org_id": "acme",
        "user_id": "ada",
        "feature": "chat",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 10,
    }


@st.composite
def hostile(draw: st.DrawFn) -> tuple[bytes, str]:
    """One bad record and the field its reason must name."""
    doc = template(draw(st.integers(0, 10**9)))
    kind = draw(st.sampled_from(["tokens", "type", "id", "unknown", "time", "huge", "utf8", "json", "meta"]))
    if kind == "tokens":
        name = draw(st.sampled_from(TOKEN_FIELDS))
        doc[name] = draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=100_000_001, max_value=2**64)))
        return json.dumps(doc).encode(), f"$.{name}"
    if kind == "type":
        name = draw(st.sampled_from((*TOKEN_FIELDS, "latency_ms", "cost_nanos")))
        doc[name] = draw(NOT_AN_INT.filter(lambda v: v is not None or name not in ("latency_ms", "cost_nanos")))
        return json.dumps(doc).encode(), f"$.{name}"
    if kind == "id":
        name = draw(st.sampled_from(ID_FIELDS + NAME_FIELDS))
        bad = draw(
            st.sampled_from(
                [":", "{", "}", " ", "\n", "\t", "é", "\x00"] if name in ID_FIELDS else ["{", " ", "\n", "é"]
            )
        )
        doc[name] = (
            draw(st.text(alphabet="abc", min_size=1, max_size=5)) + bad + draw(st.text(alphabet="xyz", max_size=3))
        )
        return json.dumps(doc).encode(), f"$.{name}"
    if kind == "unknown":
        name = draw(st.from_regex(r"[a-z_]{3,12}", fullmatch=True).filter(lambda n: n not in KNOWN))
        doc[name] = draw(st.integers())
        return json.dumps(doc).encode(), f"$.{name}"
    if kind == "time":
        shift = draw(
            st.one_of(
                st.integers(2, 10_000).map(lambda h: timedelta(hours=h)),
                st.integers(-(10**5), -401).map(lambda d: timedelta(days=d)),
            )
        )
        doc["occurred_at"] = (NOW + shift).isoformat()
        return json.dumps(doc).encode(), "$.occurred_at"
    if kind == "huge":
        name = draw(st.sampled_from(["feature", "model", "user_id"]))
        doc[name] = "x" * draw(st.integers(70_000, 200_000))  # beyond the 64 KiB a record may have
        return json.dumps(doc).encode(), "$"
    if kind == "utf8":  # before the document (inside a value, the value's field is named instead)
        return draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xfe\xfe"])) + json.dumps(
            doc
        ).encode(), "$"
    if kind == "meta":
        doc["metadata"] = draw(st.one_of(st.just({"k": "v" * 300}), st.just({"bad key": "v"}), st.just({"k": 1})))
        return json.dumps(doc).encode(), "$.metadata"
    return draw(st.sampled_from([b"[1, 2]", b'"text"', b"42", b"null", b"{", b"", b"]"])), "$"


def test_ten_thousand_hostile_records_among_valid_events(deployment: Deployment) -> None:
    dep = deployment
    made: list[tuple[bytes, str]] = []

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(hostile(), min_size=50, max_size=50))
    def gather(records: list[tuple[bytes, str]]) -> None:
        made.extend(records)

    gather()
    assert len(made) == 10_000
    valid = make_events(10_000, NOW, "volume")
    mixed: list[tuple[bytes, bytes | None]] = []
    for event, (raw, _) in zip(valid, made, strict=True):
        mixed += [(event.org_id.encode(), encode_event(event)), (b"acme", raw or None)]
    dep.start_worker()
    dep.send(mixed)  # type: ignore[arg-type]
    dep.wait_for(lambda: dep.ch_rows() == len(valid), 240, "every valid event in ClickHouse")
    dep.wait_for(lambda: dep.metric("spendstream_events_dead_lettered_total") == len(made), 120, "every dead letter")
    assert_exact(dep, valid)
    consumed = dep.metric("spendstream_events_consumed_total")
    applied = dep.metric("spendstream_events_applied_total")
    duplicates = dep.metric("spendstream_events_duplicate_total") or 0
    assert consumed == applied + duplicates + len(made) == len(mixed)
    letters = records_of(dep, dep.topics.dlq)
    assert len(letters) == len(made)
    named = Counter(headers["spendstream-field"].decode().split("[")[0] for _, headers in letters)
    expected = Counter(field for _, field in made)
    assert named == expected
    assert all(headers["spendstream-reason"] for _, headers in letters)
