"""Backtests of the forecasts and the spike detector, and their cost. Writes bench/results/insights.json.

(a) Forecasts: 1,000 synthetic scopes a seed (insights/evaluation.py: 12 weeks of history, then one month;
    per-scope weekday profile, trend, shared holidays, a level shift for 40 %, 6-22 % daily noise), each
    evaluated on a month of 2026 (scope e on month e % 12 + 1). Month-end projection MAPE after days 5, 10
    and 20 against the naive run-rate (spend so far / days elapsed x days in month), and P10-P90 coverage
    of the month's total at those days, for both models, with the level shifts where the harness has
    always put them (three weeks before the month to its first week: the MAPE target's) and anywhere (the
    calibration target's: only there is the month like the history the calibration learns from). The
    models were tuned on seeds 42, 7 and 2026; 11, 99 and 123 are held out.
(b) Spikes: the real trace in examples/trace/, per-minute cost, replayed by 100 entities (own offset
    and scale, three times over), with spikes of 6-20x an entity's mean bucket injected at random
    places; precision, recall and detection delay in buckets. Then 3x one-hour spikes in hourly series
    with weekday and hour-of-day seasons, with log-normal noise and with the trace's.
(c) Cost: microseconds per detector update and per forecaster day, and bytes per entity with
    100,000 entities.
"""

from __future__ import annotations

import csv
import sys
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import write_result
from insights.evaluation import (
    evaluate_forecasts,
    evaluate_spikes,
    hourly_spike_workload,
    spike_workload,
    synthetic_series,
    trace_minute_costs,
)
from insights.forecast import SpendForecaster
from insights.spikes import WEEKDAY_HOURS, SpikeDetector
from insights.state import HOUR, HOURLY_FADING
from schemas.settings import InsightSettings
from workloads.generators import DEFAULT_TRACE

TRACE = DEFAULT_TRACE
HEADLINE_SEED = 11
TUNING_SEEDS = (42, 7, 2026)  # the forecasters were tuned on these
HELD_OUT_SEEDS = (11, 99, 123)
FORECAST_ENTITIES = 1_000  # per seed: a coverage's standard error is 0.013 (0.028 at 200)
HOURLY_SEEDS = (11, 99, 123)  # the hourly detector was tuned on 11
MONDAY = 1_767_571_200  # 2026-01-05 00:00 UTC: where the hourly series start


def trace_rows() -> list[tuple[float, int, int]]:
    with TRACE.open() as handle:
        rows = list(csv.DictReader(handle))
    start = datetime.fromisoformat(rows[0]["TIMESTAMP"][:26])
    return [
        (
            (datetime.fromisoformat(r["TIMESTAMP"][:26]) - start).total_seconds(),
            int(r["ContextTokens"]),
            int(r["GeneratedTokens"]),
        )
        for r in rows
    ]


def _backtest(job: tuple[str, str, int]) -> tuple[str, dict[str, object]]:
    kind, steps, seed = job
    series = synthetic_series(FORECAST_ENTITIES, seed=seed, steps=steps)
    scores = evaluate_forecasts(series, lambda holidays: SpendForecaster(holidays, kind))
    result = {
        "mape": {d: round(v, 4) for d, v in scores.mape.items()},
        "naive_mape": {d: round(v, 4) for d, v in scores.naive_mape.items()},
        "ratio": {d: round(scores.mape[d] / scores.naive_mape[d], 3) for d in scores.mape},
        "coverage_p10_p90": round(scores.coverage, 3),
        "coverage_by_day": {d: round(v, 3) for d, v in scores.coverage_by_day.items()},
        "interval_width_over_actual": {d: round(v, 3) for d, v in scores.interval_width.items()},
        "brier_over_budget": round(scores.probability_brier, 4),
    }
    print(f"forecast {kind}, shifts {steps}, seed {seed}: {result}", file=sys.stderr, flush=True)
    return f"{kind}/{steps}/seed{seed}", result


def forecasts() -> dict[str, object]:
    """Both models on both placements of level shifts, every seed, two processes at a time."""
    jobs = [
        (kind, steps, seed)
        for steps in ("around_month", "anywhere")
        for seed in (*HELD_OUT_SEEDS, *TUNING_SEEDS)
        for kind in ("changepoint", "holt_winters")
        if kind == "changepoint" or seed in HELD_OUT_SEEDS
    ]
    with ProcessPoolExecutor(max_workers=2) as pool:
        runs = dict(pool.map(_backtest, jobs))

    def per_seed(steps: str, field: str, kind: str = "changepoint") -> dict[str, object]:
        return {f"seed{seed}": runs[f"{kind}/{steps}/seed{seed}"][field] for seed in HELD_OUT_SEEDS}

    def day10(steps: str, kind: str = "changepoint") -> dict[str, object]:
        return {seed: ratio[10] for seed, ratio in per_seed(steps, "ratio", kind).items()}  # type: ignore[index]

    head = runs[f"changepoint/around_month/seed{HEADLINE_SEED}"]
    out: dict[str, object] = {
        "forecast_model": "changepoint: log-linear trend, weekly season, holidays, latest level shift (16 weeks), "
        "intervals calibrated per horizon (conformal)",
        "forecast_scopes_per_seed": FORECAST_ENTITIES,
        "forecast_held_out_seeds": list(HELD_OUT_SEEDS),
        # the harness the targets were set on: shifts from three weeks before the month to its first week
        "mape_ratio_day10": day10("around_month"),
        "mape_ratio_day10_holt_winters": day10("around_month", "holt_winters"),
        # level shifts at any time, as often in the month as in the history the calibration learns from
        "coverage_by_day": per_seed("anywhere", "coverage_by_day"),
        "interval_width_over_actual": per_seed("anywhere", "interval_width_over_actual"),
        "coverage_by_day_holt_winters": per_seed("anywhere", "coverage_by_day", "holt_winters"),
        "interval_width_over_actual_holt_winters": per_seed("anywhere", "interval_width_over_actual", "holt_winters"),
        "mape_ratio_day10_shifts_anywhere": day10("anywhere"),
        "mape_ratio_day10_shifts_anywhere_holt_winters": day10("anywhere", "holt_winters"),
        "coverage_by_day_shifts_around_month": per_seed("around_month", "coverage_by_day"),
        "forecast_by_model_and_seed": runs,
    }
    for d in (5, 10, 20):
        out[f"mape_day{d}"] = head["mape"][d]  # type: ignore[index]
        out[f"naive_mape_day{d}"] = head["naive_mape"][d]  # type: ignore[index]
    return out


def spikes() -> dict[str, object]:
    costs = trace_minute_costs(trace_rows())
    series, injected, natural_peak = spike_workload(costs, seed=HEADLINE_SEED)
    scores = evaluate_spikes(series, injected, SpikeDetector)
    print(f"spikes: P {scores.precision:.3f} R {scores.recall:.3f} delays {scores.delay_buckets}", file=sys.stderr)
    return {
        "spike_precision": round(scores.precision, 3),
        "spike_recall": round(scores.recall, 3),
        "spike_delay_buckets": scores.delay_buckets,
        "spikes_injected": scores.injected,
        "spike_episodes_flagged": scores.flagged_episodes,
        "trace_natural_peak_over_mean": round(natural_peak, 2),
        "spike_bucket": "1 minute",
    }


def hourly_spikes(minutes: list[float]) -> dict[str, object]:
    """3x one-hour spikes in hourly series with weekday and hour-of-day seasons, on three seeds, with
    log-normal noise and with the shipped trace's noise: the shipped hourly detector (weekday hours and
    days off apart) against the one shipped before (hour of day, ``spike_ratio`` 5, where 3x is under the
    ratio) and one by hour of week (168 baselines)."""
    settings = InsightSettings()
    detectors = {
        "weekday_hours": lambda: SpikeDetector(
            fading=HOURLY_FADING,
            ratio=settings.spike_hourly_ratio,
            k=settings.spike_hourly_k,
            warmup=settings.spike_hourly_warmup,
            seasons=WEEKDAY_HOURS,
            bucket_s=HOUR,
        ),
        "hour_of_day_ratio_5": lambda: SpikeDetector(ratio=5.0, k=6.0, warmup=3, seasons=24, bucket_s=HOUR),
        "hour_of_week": lambda: SpikeDetector(fading=0.2, ratio=2.2, k=4.0, warmup=2, seasons=168, bucket_s=HOUR),
    }
    out: dict[str, dict[str, object]] = {}
    for seed in HOURLY_SEEDS:
        for noise, trace in (("lognormal", ()), ("trace", minutes)):
            series, injected = hourly_spike_workload(seed=seed, trace_minutes=trace)
            weeks = max(len(v) for v in series.values()) / (7 * 24)
            for name, make in detectors.items():
                scores = evaluate_spikes(series, injected, make, MONDAY, HOUR)
                false_alarms = (1 - scores.precision) * scores.flagged_episodes
                result = {
                    "precision": round(scores.precision, 3),
                    "recall": round(scores.recall, 3),
                    "delay_h": scores.delay_buckets,
                    "false_alarms_per_scope_week": round(false_alarms / len(series) / weeks, 4),
                }
                print(f"hourly 3x spikes, {name}, {noise} noise, seed {seed}: {result}", file=sys.stderr)
                out[f"{name}/{noise}/seed{seed}"] = result
    shipped = [v for k, v in out.items() if k.startswith("weekday_hours/")]
    head = out[f"weekday_hours/lognormal/seed{HEADLINE_SEED}"]
    trace_head = out[f"weekday_hours/trace/seed{HEADLINE_SEED}"]
    delays: dict[int, int] = {}
    for result in shipped:
        for delay, count in result["delay_h"].items():  # type: ignore[attr-defined]
            delays[delay] = delays.get(delay, 0) + count
    return {
        "spike_hourly_3x_precision": head["precision"],
        "spike_hourly_3x_recall": head["recall"],
        "spike_hourly_3x_delay_h": head["delay_h"],
        "spike_hourly_3x_false_alarms_per_scope_week": head["false_alarms_per_scope_week"],
        "spike_hourly_3x_trace_precision": trace_head["precision"],
        "spike_hourly_3x_trace_recall": trace_head["recall"],
        "spike_hourly_3x_worst_precision": min(r["precision"] for r in shipped),  # type: ignore[type-var]
        "spike_hourly_3x_worst_recall": min(r["recall"] for r in shipped),  # type: ignore[type-var]
        "spike_hourly_3x_delay_h_all_runs": dict(sorted(delays.items())),
        "spike_hourly_3x_by_detector": out,
    }


def costs() -> dict[str, object]:
    detector = SpikeDetector()
    began = time.perf_counter()
    updates = 0
    for bucket in range(20):
        for e in range(5_000):
            detector.observe(f"user/u{e}", bucket, 1.0 + (e * bucket) % 7)
            updates += 1
    detector_us = (time.perf_counter() - began) / updates * 1e6

    forecaster = SpendForecaster()
    day = date(2026, 1, 1)
    began = time.perf_counter()
    for i in range(2_000):
        forecaster.learn_day(day + timedelta(days=i), 100.0 + (i % 7) * 10)
    forecast_us = (time.perf_counter() - began) / 2_000 * 1e6
    today = day + timedelta(days=2_000)
    began = time.perf_counter()
    for _ in range(2_000):
        forecaster.project(today, today + timedelta(days=20), 1000.0, 10.0, 0.5)
    projection_us = (time.perf_counter() - began) / 2_000 * 1e6

    entities = 100_000
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    many = SpikeDetector(max_entities=entities)
    for bucket in range(12):
        for e in range(entities):
            many.observe(f"user/u{e:06d}", bucket, float(e % 13))
    detector_bytes = (tracemalloc.get_traced_memory()[0] - before) / entities
    tracemalloc.stop()

    count = 2_000
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    book = []
    for e in range(count):
        model = SpendForecaster()
        for i in range(35):
            model.learn_day(day + timedelta(days=i), 50.0 + (e + i) % 11)
        book.append(model)
    forecaster_bytes = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()
    return {
        "update_us_per_event": round(detector_us, 2),
        "forecast_update_us_per_day": round(forecast_us, 2),
        "projection_us": round(projection_us, 2),
        "spike_detector_bytes_per_entity": round(detector_bytes),
        "forecaster_bytes_per_entity": round(forecaster_bytes),
        "bytes_for_100k_entities_mib": round((detector_bytes + forecaster_bytes) * entities / 2**20, 1),
    }


def main() -> None:
    result: dict[str, object] = {}
    result.update(forecasts())
    result.update(spikes())
    result.update(hourly_spikes(trace_minute_costs(trace_rows())))
    result.update(costs())
    result["targets"] = {
        "mape_ratio_day10": "<= 0.5 on every held-out seed",
        "coverage_by_day": "0.77-0.83 at days 5, 10 and 20 on every held-out seed",
        "spikes": ">= 0.9, <= 2 buckets",
        "spike_hourly_3x": "precision and recall >= 0.9, delay <= 1 h",
    }
    write_result("insights", result)


if __name__ == "__main__":
    main()
