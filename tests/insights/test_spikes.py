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
