import math
import pickle
from datetime import date, timedelta

import pytest

from insights.evaluation import evaluate_forecasts, synthetic_series
from insights.forecast import Calibrator, Projection, SpendForecaster, naive_run_rate, theil_sen_log_slope

START = date(2026, 1, 5)  # a Monday
WEEK = [100.0, 110.0, 105.0, 100.0, 95.0, 20.0, 10.0]


def test_a_steady_weekly_series_is_projected_exactly_enough() -> None:
    model = SpendForecaster()
    for i in range(8 * 7):
        model.learn_day(START + timedelta(days=i), WEEK[i % 7])
    today = START + timedelta(days=8 * 7)  # a Monday
    projection = model.project(today, today + timedelta(days=6), 0.0, 0.0, 0.0)
    assert projection.p50 == pytest.approx(sum(WEEK), rel=0.03)
    assert projection.p10 < projection.p50 < projection.p90
    # half of Monday gone, at twice Monday's pace: the rest of the day is busier too
    busy = model.project(today, today, 100.0, 100.0, 0.5)
    calm = model.project(today, today, 50.0, 50.0, 0.5)
    assert busy.p50 - 100.0 > calm.p50 - 50.0


def test_days_are_learnt_once_and_gaps_as_zero() -> None:
    model = SpendForecaster()
    for i in range(21):
        model.learn_day(START + timedelta(days=i), WEEK[i % 7])
    days = model.days
    model.learn_day(START + timedelta(days=20), 1e9)  # seen already: ignored
    assert model.days == days
    model.learn_day(START + timedelta(days=24), 100.0)  # three days missing: learnt as zeros
    assert model.days == days + 4


def test_a_checkpoint_restores_the_same_forecasts() -> None:
    model = SpendForecaster()
    for i in range(40):
        model.learn_day(START + timedelta(days=i), WEEK[i % 7] * (1 + i / 100))
    copy = pickle.loads(pickle.dumps(model))
    today = START + timedelta(days=40)
    for m in (model, copy):
        m.learn_day(today, 90.0)
    assert copy.project(today + timedelta(days=1), today + timedelta(days=10), 5.0, 0.0, 0.0) == model.project(
        today + timedelta(days=1), today + timedelta(days=10), 5.0, 0.0, 0.0
    )


def test_probability_and_run_out() -> None:
    projection = Projection(spent=50.0, p10=80.0, p50=100.0, p90=125.0, days_left=10)
    assert projection.probability_over(100.0) == pytest.approx(0.5, abs=0.01)
    assert projection.probability_over(40.0) == 1.0
    assert projection.probability_over(300.0) < 0.001
    assert 0.85 < projection.probability_over(80.0) < 0.95
    model = SpendForecaster()
    for i in range(28):
        model.learn_day(START + timedelta(days=i), 10.0)
    today = START + timedelta(days=28)
    assert model.runs_out(today, today + timedelta(days=30), 0.0, 44.0) == today + timedelta(days=4)
    assert model.runs_out(today, today + timedelta(days=3), 0.0, 1000.0) is None


def test_calibrator_settles_where_80_percent_hit() -> None:
    calibrator = Calibrator()
    for i in range(20_000):  # intervals that are too narrow: a third of the checks miss
        calibrator.check(1.0 if i % 3 else 5.0, 0.0, 2.0 * calibrator.scale)
    assert calibrator.scale > 1.5


def test_theil_sen_ignores_a_step() -> None:
    growth = [100 * math.exp(0.02 * w) for w in range(12)]
    assert theil_sen_log_slope(growth) == pytest.approx(0.02)
    stepped = [v * (2.0 if w == 11 else 1.0) for w, v in enumerate(growth)]
    assert theil_sen_log_slope(stepped) == pytest.approx(0.02, abs=0.005)
    assert theil_sen_log_slope([1.0, 2.0, 0.0, 3.0]) is None
    assert naive_run_rate(100.0, 10, 30) == 300.0


def test_beats_the_naive_run_rate_on_synthetic_months() -> None:
    scores = evaluate_forecasts(synthetic_series(60, seed=5))
    assert scores.mape[10] < 0.75 * scores.naive_mape[10]
    assert 0.6 < scores.coverage < 0.95


def test_weekly_growth_reads_the_learnt_trend() -> None:
    flat, growing = SpendForecaster(), SpendForecaster()
    assert flat.weekly_growth() == 0.0  # nothing learnt yet
    for i in range(10 * 7):
        flat.learn_day(START + timedelta(days=i), WEEK[i % 7])
        growing.learn_day(START + timedelta(days=i), WEEK[i % 7] * 1.05 ** (i / 7))
    assert abs(flat.weekly_growth()) < 0.01
    assert 0.02 < growing.weekly_growth() < 0.08  # 5 % a week, as the model has it
    assert SpendForecaster(kind="local_trend").weekly_growth() == 0.0
