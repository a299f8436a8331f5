"""UsageEvent v1: valid events decode; each invalid one is rejected naming its field."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas.events import (
    EventError,
    UsageEvent,
    decode_event,
    decode_events,
    encode_event,
    usage_event_json_schema,
)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "jsonschema" / "usage_event.v1.json"

VALID: dict[str, Any] = {
    "event_id": "evt-0001",
    "occurred_at": "2024-05-17T09:30:00.123456Z",
    "org_id": "acme",
    "department_id": "eng",
    "user_id": "ada@acme.example",
    "feature": "code-review",
    "provider": "openai",
    "model": "gpt-4o-2024-08-06",
    "request_id": "req-42",
    "input_tokens": 1200,
    "output_tokens": 300,
    "cache_read_tokens": 800,
    "cache_write_tokens": 0,
    "reasoning_tokens": 64,
    "cost_nanos": 5_000_000,
    "status": "success",
    "latency_ms": 950,
    "metadata": {"team": "platform", "trace.id": "abc"},
}

MINIMAL: dict[str, Any] = {
    k: VALID[k] for k in ("event_id", "occurred_at", "org_id", "user_id", "feature", "provider", "model")
}


def with_(**changes: Any) -> dict[str, Any]:
    doc = dict(VALID)
    for key, value in changes.items():
        if value is _DROP:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


_DROP = object()

# (document, the field the error must name)
INVALID: list[tuple[Any, str]] = [
    (with_(event_id=_DROP), "$.event_id"),
    (with_(occurred_at=_DROP), "$.occurred_at"),
    (with_(org_id=_DROP), "$.org_id"),
    (with_(user_id=_DROP), "$.user_id"),
    (with_(model=_DROP), "$.model"),
    (with_(event_id=""), "$.event_id"),
    (with_(event_id="a" * 129), "$.event_id"),
    (with_(org_id="acme:eu"), "$.org_id"),  # the Redis key separator
    (with_(user_id="{ada}"), "$.user_id"),  # a Redis Cluster hash tag
    (with_(department_id="eng team"), "$.department_id"),
    (with_(feature=42), "$.feature"),
    (with_(model="gpt 4o"), "$.model"),
    (with_(provider="x" * 201), "$.provider"),
    (with_(occurred_at="2024-05-17T09:30:00"), "$.occurred_at"),  # no zone
    (with_(occurred_at="yesterday"), "$.occurred_at"),
    (with_(occurred_at=1715938200), "$.occurred_at"),
    (with_(input_tokens=-1), "$.input_tokens"),
    (with_(output_tokens=1.5), "$.output_tokens"),
    (with_(cache_read_tokens="800"), "$.cache_read_tokens"),
    (with_(cache_write_tokens=100_000_001), "$.cache_write_tokens"),
    (with_(reasoning_tokens=None), "$.reasoning_tokens"),
    (with_(cost_nanos=0.005), "$.cost_nanos"),  # money is never a float
    (with_(cost_nanos=-1), "$.cost_nanos"),
    (with_(cost_nanos=10**16), "$.cost_nanos"),
    (with_(status="ok"), "$.status"),
    (with_(latency_ms=-5), "$.latency_ms"),
    (with_(metadata={"k": 1}), "$.metadata"),
    (with_(metadata={f"k{i}": "v" for i in range(17)}), "$.metadata"),
    (with_(metadata={"bad key": "v"}), "$.metadata"),
    (with_(metadata={"k": "v" * 257}), "$.metadata"),
    (with_(input_token=5), "$.input_token"),  # misspelt: would bill zero
    # `$` matches before a final newline: each of these became a scope, or an unpriced model, of its own
    (with_(org_id="acme\n"), "$.org_id"),
    (with_(user_id="ada\n"), "$.user_id"),
    (with_(department_id="eng\n"), "$.department_id"),
    (with_(feature="chat\n"), "$.feature"),
    (with_(event_id="evt-1\n"), "$.event_id"),
    (with_(model="gpt-4o\n"), "$.model"),
    (with_(provider="openai\n"), "$.provider"),
    (with_(metadata={"team\n": "v"}), "$.metadata"),
    ([VALID], "$"),
    ("not an object", "$"),
]


def test_valid_event_decodes_with_every_field() -> None:
    event = decode_event(json.dumps(VALID).encode())
    assert isinstance(event, UsageEvent)
    assert event.occurred_at == datetime(2024, 5, 17, 9, 30, 0, 123456, tzinfo=UTC)
    assert (event.input_tokens, event.output_tokens, event.cache_read_tokens, event.reasoning_tokens) == (
        1200,
        300,
        800,
        64,
    )
    assert event.total_tokens == 2364
    assert event.metadata == {"team": "platform", "trace.id": "abc"}
    assert decode_event(encode_event(event)) == event


def test_minimal_event_takes_defaults() -> None:
    event = decode_event(json.dumps(MINIMAL))
    assert isinstance(event, UsageEvent)
    assert (event.department_id, event.request_id, event.cost_nanos, event.status) == (
        None,
        None,
        None,
        "success",
    )
    assert event.total_tokens == 0


def test_offsets_are_kept_as_instants() -> None:
    event = decode_event(json.dumps(with_(occurred_at="2024-05-17T11:30:00+02:00")))
    assert isinstance(event, UsageEvent)
    assert event.occurred_at == datetime(2024, 5, 17, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(("doc", "field"), INVALID, ids=[f"{i:02d}-{f}" for i, (_, f) in enumerate(INVALID)])
def test_invalid_event_names_the_field(doc: Any, field: str) -> None:
    result = decode_event(json.dumps(doc).encode())
    assert isinstance(result, EventError)
    assert result.field.startswith(field), result
    assert result.reason


def test_at_least_twenty_distinct_invalid_events() -> None:
    assert len({json.dumps(doc, sort_keys=True) for doc, _ in INVALID}) >= 20


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b'{"event_id": "a",}', b"null"])
def test_malformed_bytes_are_rejected_not_raised(raw: bytes) -> None:
    result = decode_event(raw)
    assert isinstance(result, EventError)
    assert result.field == "$"


def test_batch_keeps_positions() -> None:
    results = decode_events([json.dumps(VALID).encode(), b"{", json.dumps(MINIMAL).encode()])
    assert [type(r).__name__ for r in results] == ["UsageEvent", "EventError", "UsageEvent"]


def test_shipped_json_schema_is_the_models() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json.loads(json.dumps(usage_event_json_schema()))


@pytest.mark.parametrize(
    "doc",
    [VALID, MINIMAL, with_(department_id=None), with_(occurred_at="2024-05-17T11:30:00+02:00")]
    + [doc for doc, _ in INVALID],
)
def test_json_schema_agrees_with_the_model(doc: Any) -> None:
    validator = jsonschema.Draft202012Validator(
        json.loads(SCHEMA_FILE.read_text()), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    schema_ok = validator.is_valid(doc)
    model_ok = isinstance(decode_event(json.dumps(doc).encode()), UsageEvent)
    assert schema_ok == model_ok


@pytest.mark.parametrize("bad", ["acme\n", "acme\r\n", "\nacme"])
def test_ids_with_a_newline_are_refused_everywhere(bad: str) -> None:
    """The cap client, budgets and request ids validate ids as the event does."""
    from enforcement.core import reserve_call
    from enforcement.keys import KeyLayout, PeriodKeys
    from enforcement.subject import Subject, SubjectError
    from schemas.budgets import Budget, BudgetMode, Period, ScopeKind

    with pytest.raises(SubjectError, match="org_id"):
        Subject(org_id=bad, user_id="ada")
    with pytest.raises(SubjectError, match="model"):
        Subject(org_id="acme", user_id="ada", model="gpt-4o" + bad)
    with pytest.raises(ValueError):
        Budget("acme", ScopeKind.USER, bad, Period.MONTHLY, 100, BudgetMode.HARD)
    with pytest.raises(SubjectError, match="request_id"):
        periods = PeriodKeys.at(datetime(2026, 1, 1, tzinfo=UTC), "UTC")
        reserve_call(KeyLayout(), Subject("acme", "ada"), "req" + bad, 1, 60_000, periods)
