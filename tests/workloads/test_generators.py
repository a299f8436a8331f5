"""The workloads the demo, the tests and the benchmarks replay: the real trace read as it is, repeatable
event streams, and a synthetic org shaped as described (busy weekdays, quiet weekends, spike days)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.events import decode_event, encode_event
from workloads.generators import DEFAULT_TRACE, synthetic, trace_events, trace_rows

ROOT = Path(__file__).resolve().parents[2]


def test_the_sample_trace_ships_with_its_licence() -> None:
    assert DEFAULT_TRACE.is_relative_to(ROOT) and DEFAULT_TRACE.exists()
    assert DEFAULT_TRACE.read_text().splitlines()[0] == "TIMESTAMP,ContextTokens,GeneratedTokens"
    note = (DEFAULT_TRACE.parent / "README.md").read_text()
    assert "CC BY 4.0" in note and "Splitwise" in note


def test_trace_events_keep_the_traces_tokens_and_gaps_and_repeat_by_seed() -> None:
    text = DEFAULT_TRACE.read_text()
    rows = list(trace_rows(text))[:50]
    start = datetime(2026, 1, 5, tzinfo=UTC)
    events = list(trace_events(text, 50, seed=3, start=start, speedup=2.0))
    assert events == list(trace_events(text, 50, seed=3, start=start, speedup=2.0))
    assert len({e.event_id for e in events}) == 50
    for event, (at, prompt, generated) in zip(events, rows, strict=True):
        assert event.input_tokens + event.cache_read_tokens == prompt
        assert event.output_tokens == generated
        assert event.occurred_at - start == (at - rows[0][0]) / 2.0
        assert decode_event(encode_event(event)) == event  # every event passes the worker's validation


def test_the_synthetic_org_is_quiet_at_weekends_and_busy_on_spike_days() -> None:
    monday = datetime(2026, 1, 5, tzinfo=UTC)
    per_day = Counter(e.occurred_at.date() for e in synthetic(14, 200, monday, spike_days=(9,)))
    assert per_day[monday.date()] == 200
    assert per_day[(monday + timedelta(days=5)).date()] == 50  # Saturday: a quarter
    assert per_day[(monday + timedelta(days=9)).date()] == 800  # a spike day: four times
