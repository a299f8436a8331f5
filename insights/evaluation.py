"""Backtests of the forecasts: synthetic daily series with known structure, and the metrics. Pure.

:func:`synthetic_series` makes, per entity, twelve weeks of history and one
evaluated month: a base level, a per-entity weekday profile, a trend, shared
holidays, for some entities a step change, and multiplicative noise. The seed
fixes everything. :func:`evaluate_forecasts` plays each series day by day into
a :class:`~insights.forecast.SpendForecaster` and scores the month-end
projection after days 5, 10 and 20 against the naive run-rate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from insights.forecast import Calibrator, SpendForecaster, naive_run_rate

__all__ = [
    "Injected",
    "Series",
    "evaluate_forecasts",
    "evaluate_spikes",
    "hourly_spike_workload",
    "spike_workload",
    "synthetic_series",
    "trace_minute_costs",
]

HISTORY_DAYS = 84
CHECKPOINTS = (5, 10, 20)


@dataclass(frozen=True, slots=True)
class Series:
    entity: str
    start: date
    values: tuple[float, ...]  # history then the evaluated month
    month_start: date
    month_days: int
    holidays: frozenset[date]
    step_day: date | None = None

    @property
    def month(self) -> tuple[float, ...]:
        offset = (self.month_start - self.start).days
        return self.values[offset : offset + self.month_days]


def synthetic_series(
    entities: int = 200, seed: int = 42, year: int = 2026, steps: str = "around_month"
) -> list[Series]:
    """Entity ``e`` is evaluated on month ``e % 12 + 1`` of ``year``, so the months' weekday layouts vary.

    Four entities in ten shift level once (to 0.45-0.75 or 1.4-2.2 times): on any day from the third week of
    history to the month's end (``steps="anywhere"``: as often in the evaluated month as in the history the
    interval calibration learns from), or only from three weeks before the month to its first week
    (``"around_month"``, the harness before #31: every checkpoint sees a recent shift, and the history's
    last weeks hold more shifts than the month after its first week, so no calibration learnt from them can
    hold at every checkpoint)."""
    if steps not in ("anywhere", "around_month"):
        raise ValueError("steps: anywhere or around_month")
    rng = random.Random(seed)
    first = date(year - 1, 9, 1)
    calendar_days = [first + timedelta(days=d) for d in range(500)]
    # a shared holiday calendar: about one weekday holiday a month
    holidays = frozenset(rng.sample([d for d in calendar_days if d.weekday() < 5], 16))
    out = []
    for e in range(entities):
        month_start = date(year, e % 12 + 1, 1)
        nxt = date(year + (month_start.month == 12), month_start.month % 12 + 1, 1)
        month_days = (nxt - month_start).days
        start = month_start - timedelta(days=HISTORY_DAYS)
        calendar = [start + timedelta(days=d) for d in range(HISTORY_DAYS + month_days)]
        base = math.exp(rng.gauss(math.log(400.0), 1.0))
        profile = [rng.uniform(0.85, 1.2) for _ in range(5)] + [rng.uniform(0.15, 0.6), rng.uniform(0.1, 0.5)]
        mean = sum(profile) / 7
        profile = [p / mean for p in profile]
        growth = rng.uniform(-0.004, 0.012)  # per day: about -12 % to +45 % a month
        noise = rng.uniform(0.06, 0.22)
        holiday_factor = rng.uniform(0.2, 0.5)
        step_day = None
        step = 1.0
        if rng.random() < 0.4:
            low, high = (14, len(calendar)) if steps == "anywhere" else (HISTORY_DAYS - 21, HISTORY_DAYS + 7)
            step_day = calendar[rng.randrange(low, high)]
            step = rng.choice([rng.uniform(0.45, 0.75), rng.uniform(1.4, 2.2)])
        values = []
        for i, day in enumerate(calendar):
            level = base * math.exp(growth * i) * (step if step_day is not None and day >= step_day else 1.0)
            value = level * profile[day.weekday()] * math.exp(rng.gauss(-noise * noise / 2, noise))
            if day in holidays:
                value *= holiday_factor
            values.append(value)
        out.append(Series(f"e{e:03d}", start, tuple(values), month_start, month_days, holidays, step_day))
    return out


@dataclass
class ForecastScores:
    mape: dict[int, float] = field(default_factory=dict)
    naive_mape: dict[int, float] = field(default_factory=dict)
    coverage: float = 0.0
    coverage_by_day: dict[int, float] = field(default_factory=dict)
    interval_width: dict[int, float] = field(default_factory=dict)  # mean (P90 - P10) / actual
    probability_brier: float = 0.0  # of "total > budget" with the budget at the median run-rate
    updates: int = 0


def evaluate_forecasts(
    series: Sequence[Series],
    make: Callable[[frozenset[date]], SpendForecaster] | None = None,
    checkpoints: Sequence[int] = CHECKPOINTS,
) -> ForecastScores:
    """Play every series into a fresh forecaster (one calibrator shared, as in a worker)."""
    make = make or SpendForecaster
    calibrator = Calibrator()
    errors: dict[int, list[float]] = {d: [] for d in checkpoints}
    naive: dict[int, list[float]] = {d: [] for d in checkpoints}
    hits: dict[int, list[bool]] = {d: [] for d in checkpoints}
    widths: dict[int, list[float]] = {d: [] for d in checkpoints}
    brier: list[float] = []
    forecasters = [make(s.holidays) for s in series]
    updates = 0
    # day by day across all entities (day i of each entity's own calendar), so the shared calibrator
    # sees time pass as a worker does
    for i in range(HISTORY_DAYS + max(s.month_days for s in series) - 1):
        for s, model in zip(series, forecasters, strict=True):
            if i >= HISTORY_DAYS + s.month_days - 1:
                continue
            day = s.start + timedelta(days=i)
            model.learn_day(day, s.values[i], calibrator)
            updates += 1
            d = i - HISTORY_DAYS + 1  # days of the month closed
            if d not in checkpoints:
                continue
            month = s.month
            actual = sum(month)
            spent = sum(month[:d])
            period_end = s.month_start + timedelta(days=s.month_days - 1)
            projection = model.project(day + timedelta(days=1), period_end, spent, 0.0, 0.0, calibrator)
            errors[d].append(abs(projection.p50 - actual) / actual)
            run_rate = naive_run_rate(spent, d, s.month_days)
            naive[d].append(abs(run_rate - actual) / actual)
            hits[d].append(projection.p10 <= actual <= projection.p90)
            widths[d].append((projection.p90 - projection.p10) / actual)
            budget = run_rate  # a budget right where the naive projection lands: the hard case
            probability = projection.probability_over(budget)
            brier.append((probability - (1.0 if actual > budget else 0.0)) ** 2)
    scores = ForecastScores(updates=updates)
    for d in checkpoints:
        scores.mape[d] = sum(errors[d]) / len(errors[d])
        scores.naive_mape[d] = sum(naive[d]) / len(naive[d])
        scores.coverage_by_day[d] = sum(hits[d]) / len(hits[d])
        scores.interval_width[d] = sum(widths[d]) / len(widths[d])
    every = [h for d in checkpoints for h in hits[d]]
    scores.coverage = sum(every) / len(every)
    scores.probability_brier = sum(brier) / len(brier)
    return scores


@dataclass(frozen=True, slots=True)
class Injected:
    entity: str
    start: int  # bucket index
    length: int


@dataclass
class SpikeScores:
    precision: float
    recall: float
    delay_buckets: dict[int, int]  # detection delay (buckets after the spike's start) -> spikes
    injected: int
    flagged_episodes: int
    natural_peak_ratio: float  # the trace's own largest bucket over its mean, before injection
    updates: int


def trace_minute_costs(rows: Sequence[tuple[float, int, int]]) -> list[float]:
    """Per-minute cost of a trace of (seconds from start, prompt tokens, output tokens), priced as
    gpt-4o ($2.50 / $10 per million tokens), in USD."""
    minutes = int(max(t for t, _, _ in rows) // 60) + 1
    costs = [0.0] * minutes
    for t, prompt, output in rows:
        costs[int(t // 60)] += (prompt * 2.5 + output * 10.0) / 1e6
    return costs


def spike_workload(
    costs: Sequence[float], entities: int = 100, loops: int = 3, warmup: int = 20, seed: int = 42
) -> tuple[dict[str, list[float]], list[Injected], float]:
    """Entities replaying the trace's minute costs (each from its own offset, at its own scale, ``loops``
    times over) with spikes added at random places after ``warmup`` buckets: 6 to 20 times the
    entity's mean bucket, lasting one to three buckets. Returns series, spikes and the trace's own
    peak-to-mean ratio (what a detector must not call a spike)."""
    rng = random.Random(seed)
    base_mean = sum(costs) / len(costs)
    natural_peak = max(costs) / base_mean
    series: dict[str, list[float]] = {}
    injected: list[Injected] = []
    length = len(costs) * loops
    for e in range(entities):
        name = f"user/u{e:03d}"
        offset = rng.randrange(len(costs))
        scale = math.exp(rng.gauss(0.0, 1.0))
        values = [costs[(offset + i) % len(costs)] * scale for i in range(length)]
        mean = base_mean * scale
        position = warmup + rng.randrange(0, 12)
        while position < length - 3:
            span = rng.randint(1, 3)
            for i in range(span):
                values[position + i] += mean * rng.uniform(6.0, 20.0)
            injected.append(Injected(name, position, span))
            position += span + rng.randint(25, 90)
        series[name] = values
    return series, injected, natural_peak


def hourly_spike_workload(
    entities: int = 100,
    weeks: int = 8,
    warmup_days: int = 14,
    factor: float = 3.0,
    seed: int = 42,
    trace_minutes: Sequence[float] = (),
) -> tuple[dict[str, list[float]], list[Injected]]:
    """Hourly cost of ``entities`` scopes (users, departments, models and features in turn) over ``weeks``
    (bucket 0 is a Monday 00:00 UTC): busy office hours with a ramp on weekdays, each weekday at its own level
    (0.85 to 1.2), a quiet night, weekends at a fifth, each scope at its own scale; after ``warmup_days``,
    one-hour spikes of ``factor`` times the hour's expected cost (the hour costs ``factor`` times its norm),
    one every one to four days. What an hourly detector must catch, while the weekday and hour-of-day
    seasons raise nothing.

    The noise is 15 % log-normal, or with ``trace_minutes`` (a trace's cost per minute) the trace's own:
    an hour is its norm times twelve five-minute stretches of the trace, each from a random place, over
    the trace's mean (a minute of the shipped trace varies by 100 %, an hour built so by 12 %)."""
    rng = random.Random(seed)
    hours = weeks * 7 * 24
    minutes = list(trace_minutes)
    minute_mean = sum(minutes) / len(minutes) if minutes else 1.0

    def noise() -> float:
        if not minutes:
            return math.exp(rng.gauss(-(0.15**2) / 2, 0.15))
        stretches: list[float] = []
        for _ in range(12):
            at = rng.randrange(len(minutes))
            stretches.extend(minutes[(at + i) % len(minutes)] for i in range(5))
        return sum(stretches) / len(stretches) / minute_mean

    series: dict[str, list[float]] = {}
    injected: list[Injected] = []
    for e in range(entities):
        name = f"{('user', 'department', 'model', 'feature')[e % 4]}/x{e:03d}"
        scale = math.exp(rng.gauss(0.0, 1.0))
        weekdays = [rng.uniform(0.85, 1.2) for _ in range(5)] + [0.2, 0.2]
        start_hour, end_hour = rng.choice((8, 9, 10)), rng.choice((17, 18, 19))
        expected = []
        for h in range(hours):
            day, hour = divmod(h, 24)
            ramp = 0.6 if hour == start_hour else 1.0
            level = (ramp if start_hour <= hour < end_hour else 0.08) * weekdays[day % 7]
            expected.append(level * scale)
        values = [v * noise() for v in expected]
        position = warmup_days * 24 + rng.randrange(24)
        while position < hours:
            values[position] += (factor - 1.0) * expected[position]
            injected.append(Injected(name, position, 1))
            position += rng.randint(24, 96)
        series[name] = values
    return series, injected


def evaluate_spikes(
    series: Mapping[str, Sequence[float]],
    injected: Sequence[Injected],
    make: Callable[[], Any],
    origin: int = 0,
    bucket_s: int = 1,
) -> SpikeScores:
    """Feed every entity's buckets in time order (bucket ``i`` as ``origin + i x bucket_s``: epoch seconds,
    for a detector whose seasons follow the calendar); an episode is a run of flagged buckets; it is true when
    it overlaps an injected spike. Recall counts spikes flagged within their span plus two buckets."""
    detector = make()
    flagged: dict[str, list[int]] = {name: [] for name in series}
    length = max(len(v) for v in series.values())
    updates = 0
    for bucket in range(length):
        for name, values in series.items():
            if bucket < len(values):
                updates += 1
                if detector.observe(name, origin + bucket * bucket_s, values[bucket], {"gpt-4o": values[bucket]}):
                    flagged[name].append(bucket)
    episodes: list[tuple[str, int, int]] = []
    for name, buckets in flagged.items():
        for bucket in buckets:
            if episodes and episodes[-1][0] == name and episodes[-1][2] == bucket - 1:
                episodes[-1] = (name, episodes[-1][1], bucket)
            else:
                episodes.append((name, bucket, bucket))
    by_entity: dict[str, list[Injected]] = {}
    for spike in injected:
        by_entity.setdefault(spike.entity, []).append(spike)
    true_episodes = sum(
        any(s.start <= end and start <= s.start + s.length - 1 for s in by_entity.get(name, []))
        for name, start, end in episodes
    )
    delays: dict[int, int] = {}
    found = 0
    for spike in injected:
        hits = [b for b in flagged[spike.entity] if spike.start <= b <= spike.start + spike.length - 1 + 2]
        if hits:
            found += 1
            delay = hits[0] - spike.start
            delays[delay] = delays.get(delay, 0) + 1
    return SpikeScores(
        precision=true_episodes / len(episodes) if episodes else 1.0,
        recall=found / len(injected) if injected else 1.0,
        delay_buckets=dict(sorted(delays.items())),
        injected=len(injected),
        flagged_episodes=len(episodes),
        natural_peak_ratio=0.0,
        updates=updates,
    )
