import pickle

import pytest

from insights.evaluation import evaluate_spikes, spike_workload
from insights.spikes import WEEKDAY_HOURS, SpikeDetector


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
    assert detector.entities["a"].expected(0) < 5.0
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
    values = series["user/x000"]
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


MONDAY = 1_767_571_200  # 2026-01-05 00:00 UTC


def test_weekday_hours_keep_days_off_apart() -> None:
    """By weekday hours (48 seasons), a Saturday's 10:00 is judged against earlier days off, a Monday's against
    earlier weekdays: the quiet weekend is no alarm, and a weekday as quiet as a Saturday teaches nothing wrong."""
    detector = SpikeDetector(fading=0.2, ratio=2.2, k=4.0, warmup=4, seasons=WEEKDAY_HOURS, bucket_s=3_600)
    assert detector.season_of(MONDAY + 10 * 3_600) == 10
    assert detector.season_of(MONDAY + (5 * 24 + 10) * 3_600) == 34  # Saturday 10:00
    flagged = 0
    for day in range(21):
        for hour in range(24):
            office = 9 <= hour < 18
            cost = (100.0 if office else 4.0) * (0.2 if day % 7 >= 5 else 1.0)
            flagged += detector.observe("org/acme", MONDAY + (day * 24 + hour) * 3_600, cost) is not None
    assert flagged == 0
    saturday = MONDAY + ((21 + 5) * 24 + 11) * 3_600
    spike = detector.observe("org/acme", saturday, 60.0)  # three times a Saturday's 11:00
    assert spike is not None and spike.expected == pytest.approx(20.0)
    # a holiday placed as a day off: a weekday's 11:00 as quiet as a Saturday's is no alarm
    assert detector.observe("org/acme", MONDAY + ((21 + 7) * 24 + 11) * 3_600, 20.0, season=24 + 11) is None
    with pytest.raises(ValueError, match="season: 48"):
        detector.observe("org/acme", MONDAY + 40 * 24 * 3_600, 1.0, season=48)


def test_the_hourly_detector_catches_3x_hours_on_both_noises() -> None:
    """The shipped hourly detector on the 3x one-hour workload, with log-normal noise and with the noise of
    a bursty trace: precision and recall at least 0.9 each, found in the hour itself."""
    from insights.evaluation import hourly_spike_workload

    bursty = [0.0, 0.1, 0.3, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 2.6] * 6  # a minute's cost varies by about 80 %
    for minutes in ((), bursty):
        series, injected = hourly_spike_workload(entities=20, weeks=5, seed=5, trace_minutes=minutes)
        scores = evaluate_spikes(
            series,
            injected,
            lambda: SpikeDetector(fading=0.2, ratio=2.2, k=4.0, warmup=4, seasons=WEEKDAY_HOURS, bucket_s=3_600),
            MONDAY,
            3_600,
        )
        assert scores.precision >= 0.9 and scores.recall >= 0.9
        assert list(scores.delay_buckets) == [0]
