"""Checkpoints of the insights: restored when their version matches, refused with a reason otherwise."""

import pickle
from datetime import date

import pytest

from insights.forecast import SpendForecaster
from insights.state import STATE_VERSION, CheckpointError, dump_state, fresh_state, load_state, with_settings
from schemas.settings import InsightSettings


def test_a_checkpoint_round_trips() -> None:
    state = fresh_state(InsightSettings())
    model = SpendForecaster()
    model.learn_day(date(2026, 1, 5), 10.0)
    state.forecasters["acme|org/acme"] = model
    state.alerted.add("k")
    back = load_state(dump_state(state))
    assert back.forecasters["acme|org/acme"].days == 1 and back.alerted == {"k"}
    assert sorted(back.watches) == sorted(state.watches)


def test_the_hourly_watch_follows_the_settings() -> None:
    assert sorted(fresh_state(InsightSettings()).watches) == [60, 3600]
    assert sorted(fresh_state(InsightSettings(spike_hourly=False)).watches) == [60]


def test_other_versions_and_old_pickles_start_again_with_a_reason() -> None:
    raw = dump_state(fresh_state(InsightSettings()))
    with pytest.raises(CheckpointError, match="unversioned"):
        load_state(pickle.dumps(fresh_state(InsightSettings())))
    older = raw.replace(STATE_VERSION.to_bytes(2, "big"), (STATE_VERSION - 1).to_bytes(2, "big"), 1)
    with pytest.raises(CheckpointError, match=f"version {STATE_VERSION - 1} checkpoint"):
        load_state(older)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_state(raw[:-20])


def test_a_restored_state_takes_todays_thresholds_and_keeps_what_it_learnt() -> None:
    state = fresh_state(InsightSettings(spike_min_usd="0.01", spike_ratio=5.0))
    state.watches[60].detector.observe("acme|user/u1", 0, 0.5)
    back = with_settings(load_state(dump_state(state)), InsightSettings(spike_min_usd="1.00", spike_ratio=8.0))
    minute = back.watches[60].detector
    assert (minute.min_cost, minute.ratio) == (1e9, 8.0)  # nano-USD
    assert "acme|user/u1" in minute.entities  # learnt before the restart, kept
    assert sorted(back.watches) == [60, 3600]
    moved = with_settings(load_state(dump_state(state)), InsightSettings(spike_bucket_s=2, spike_hourly=False))
    assert sorted(moved.watches) == [2] and not moved.watches[2].detector.entities  # a new size starts fresh
