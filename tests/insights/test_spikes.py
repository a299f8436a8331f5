import pickle

import pytest

from insights.evaluation import evaluate_spikes, spike_workload
from insights.spikes import SpikeDetector


def test_flags_a_spike_names_its_driver_and_keeps_learning() -> None:
    detector = SpikeDetector(warmup=5)
    for bucket in range(30):
        assert detector.observe("user/ada", bucket, 10.0 + bucket % 3) is None
    spike = detector.observe("user/ada", 30, 80.0, {"gpt-4o": 70.0, "o3-mini": 10.0})
    assert spike is not None
    assert (spike.entity, spike.bucket, spike.driver) == ("user/ada", 30, "gpt-4o")
    assert spike.expected == pytest.approx(11.0, abs=0.6)
    assert spike.ratio > 6 and spike.driver_share == 70 / 80
    assert detector.observe("user/ada", 31, 80.0) is not None  # the spike did not become the norm
    assert detector.observe("user/ada", 31, 80.0) is None  # a bucket seen already


def test_quiet_buckets_count_and_state_round_trips() -> None:
    detector = SpikeDetector(warmup=3, max_entities=2)
    for bucket in range(10):
        detector.observe("a", bucket, 5.0)
        detector.observe("b", bucket, 5.0)
    detector.idle("a", 10)
    assert detector.entities["a"].pair(0)[0].get() < 5.0
    restored = SpikeDetector.loads(detector.dumps())
    assert restored.observe("b", 10, 50.0) == detector.observe("b", 10, 50.0)
    detector.observe("c", 0, 1.0)  # a third entity: the longest idle one is forgotten
    assert detector.known() == ["b", "c"]


def test_seasons_keep_a_daily_ramp_from_looking_like_a_spike() -> None:
    hourly = SpikeDetector(warmup=3, seasons=24, bucket_s=3600)
    flat = SpikeDetector(warmup=3, bucket_s=3600)
    flagged = {"seasonal": 0, "flat": 0}
    for day in range(10):
        for hour in range(24):
            cost = 100.0 if 9 <= hour < 18 else 5.0  # office hours
            bucket = (day * 24 + hour) * 3600
            flagged["seasonal"] += hourly.observe("org/acme", bucket, cost) is not None
            flagged["flat"] += flat.observe("org/acme", bucket, cost) is not None
    assert flagged["seasonal"] == 0 and flagged["flat"] > 0
    spike = hourly.observe("org/acme", (10 * 24 + 10) * 3600, 900.0)  # 10:00 on day 11
    assert spike is not None and spike.expected == pytest.approx(100.0, rel=0.01)


def test_backtest_on_a_small_workload() -> None:
    costs = [1.0, 3.0, 0.5, 2.0, 1.5, 4.0, 0.2, 1.0, 2.5, 0.8] * 6
    series, injected, peak = spike_workload(costs, entities=20, loops=2, seed=3)
    assert peak == pytest.approx(4.0 / 1.65)
    scores = evaluate_spikes(series, injected, SpikeDetector)
    assert scores.recall >= 0.9 and scores.precision >= 0.9
    assert max(scores.delay_buckets) <= 2
    assert pickle.loads(pickle.dumps(injected)) == injected


def test_the_hourly_workload_has_its_seasons_and_3x_hours() -> None:
    from insights.evaluation import hourly_spike_workload

    series, injected = hourly_spike_workload(entities=5, weeks=3, seed=3)
    assert len(series) == 5 and all(len(v) == 3 * 7 * 24 for v in series.values())
    assert injected and all(s.start >= 14 * 24 and s.length == 1 for s in injected)
    values = series["department/d000"]
    weekday_noon, saturday_noon, night = values[24 * 2 + 12], values[24 * 5 + 12], values[24 * 2 + 3]
    assert weekday_noon > 3 * saturday_noon and weekday_noon > 5 * night  # the seasons a detector must not flag


def test_a_young_baseline_flags_three_times_its_level() -> None:
    """The first bucket of a season is not learnt as a deviation from nothing: after two quiet buckets of
    the same hour of week, three times the level is a spike."""
    detector = SpikeDetector(fading=0.2, ratio=2.2, k=4.0, warmup=2, seasons=168, bucket_s=1)
    for week in range(2):
        for hour in range(168):
            assert detector.observe("department/eng", week * 168 + hour, 10.0 + hour % 2) is None
    assert detector.observe("department/eng", 2 * 168 + 12, 31.0) is not None
