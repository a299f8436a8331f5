"""Period-end spend forecasts with calibrated intervals, learned online.

Per scope (an org, a department, a user) a :class:`SpendForecaster` learns the
daily spend series as each day closes and projects the period's end: the spend
so far plus the expected spend of the days left (today's remainder included).

Two River forecasters can sit inside; ``bench/insights.py`` measures both:

* ``changepoint`` (the default, the better of the two):
  :class:`~insights.changepoint_trend.ChangepointTrend`, a log-linear trend with
  a weekly season, holidays and the latest level shift, fitted over sixteen
  weeks: a steady series is averaged over all of them, one that shifted is
  projected from its level since;
* ``holt_winters``: River's ``HoltWinters`` (multiplicative weekly season,
  additive trend) with holidays taken out before it learns and put back after,
  and its trend set each week from the Theil-Sen slope of the last twelve
  weekly totals (shrunk by 0.8).

Intervals are conformal. The model says how uncertain a sum of ``h`` days is
(``changepoint``: from its fit's residuals and the doubt of its level and
slope; ``holt_winters``: from recent one-day residuals), and a
:class:`Calibrator`, shared by all the scopes of a worker, scales the intervals
of each horizon: every day it scores the forecasts made 7, 14, 21 and 28 days
before against what was spent since, and takes the width at which 80 % of the
recent ones held.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

from river import time_series

from insights.changepoint_trend import ChangepointTrend

__all__ = ["Calibrator", "Projection", "SpendForecaster", "naive_run_rate", "normal_cdf", "theil_sen_log_slope"]

SEASON = 7
RESIDUALS = 28  # days of one-day residuals kept (holt_winters)
RECENT = 28  # days of spend kept, the longest horizon checked
TREND_WEEKS = 12  # weekly totals the trend is read from
TREND_SHRINK = 0.8
PERSIST = 0.15  # holt_winters: the share of a day's error variance that persists across days
HORIZONS = (7, 14, 21, 28)  # the horizons the calibrator checks, in days
Z80 = 1.2816  # P90 of the standard normal


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _push(values: array[float], limit: int, *items: float) -> None:
    values.extend(items)
    if len(values) > limit:
        del values[: len(values) - limit]


def theil_sen_log_slope(totals: array[float] | list[float]) -> float | None:
    """The median pairwise slope of log totals per step (None under four positive totals): robust to
    a step change, which a least-squares slope would read as growth."""
    values = [math.log(v) for v in totals if v > 0]
    n = len(values)
    if n < 4 or n < len(totals):
        return None
    slopes = sorted((values[j] - values[i]) / (j - i) for i in range(n) for j in range(i + 1, n))
    return slopes[len(slopes) // 2]


def naive_run_rate(spent: float, days_elapsed: int, days_in_period: int) -> float:
    """What spend-so-far projects at a constant daily rate."""
    return spent / days_elapsed * days_in_period if days_elapsed else 0.0


class Calibrator:
    """Per horizon, how much to widen or narrow the model's intervals so that 80 % hold: split conformal.

    Every closed day, each scope checks the forecasts it made 7, 14, 21 and 28 days before for the days
    since: the miss, ``|log(actual / expected)|`` over the log standard deviation the model gave, is a
    score. A horizon's scale is the target quantile of its last ``window`` scores over the normal's; a
    projection ``days`` ahead takes the scale of its horizon, interpolated. A horizon with fewer than
    ``least`` scores borrows the nearest horizon's, and with none anywhere the scale is 1."""

    def __init__(self, target: float = 0.8, window: int = 4_000, least: int = 100) -> None:
        self.target = target
        self.window = window
        self.least = least
        self.scores: dict[int, array[float]] = {h: array("f") for h in HORIZONS}
        self._scales: dict[int, tuple[int, float]] = {}  # horizon -> (scores seen when computed, scale)
        self.checks = 0

    def check(self, horizon: int, actual: float, expected: float, log_sd: float) -> None:
        if expected <= 0 or log_sd <= 0:
            return
        floor = 0.01 * expected  # a day of nothing is a miss, not a log of zero
        miss = abs(math.log((actual + floor) / (expected + floor))) / log_sd
        _push(self.scores[horizon], self.window, miss)
        self.checks += 1

    def _scale_of(self, horizon: int) -> float | None:
        scores = self.scores[horizon]
        if len(scores) < self.least:
            return None
        seen, scale = self._scales.get(horizon, (-1, 1.0))
        if seen < 0 or self.checks - seen >= max(1, self.window // 50):
            ordered = sorted(scores)
            rank = min(len(ordered) - 1, math.ceil(self.target * (len(ordered) + 1)) - 1)
            scale = max(0.2, min(10.0, ordered[rank] / Z80))
            self._scales[horizon] = (self.checks, scale)
        return scale

    def scale(self, days: float) -> float:
        """The width multiplier for an interval over ``days`` days ahead."""
        known = [(h, v) for h in HORIZONS if (v := self._scale_of(h)) is not None]
        if not known:
            return 1.0
        if days <= known[0][0]:
            return known[0][1]
        for (h0, v0), (h1, v1) in pairwise(known):
            if days <= h1:
                return v0 + (v1 - v0) * (days - h0) / (h1 - h0)
        return known[-1][1]


@dataclass(frozen=True, slots=True)
class Projection:
    """The period's end as P10 / P50 / P90, in the series' unit (nano-USD in spendstream)."""

    spent: float
    p10: float
    p50: float
    p90: float
    days_left: float

    def probability_over(self, budget: float) -> float:
        """P(period total > budget), from a log-normal through P10 / P50 / P90 of the spend still to come."""
        if self.spent >= budget:
            return 1.0
        rest50 = self.p50 - self.spent
        if rest50 <= 0:
            return 0.0
        rest10, rest90 = max(self.p10 - self.spent, 1e-9), max(self.p90 - self.spent, 1e-9)
        sigma = max(math.log(rest90 / rest10) / (2 * Z80), 1e-6)
        return 1.0 - normal_cdf(math.log((budget - self.spent) / rest50) / sigma)


class SpendForecaster:
    """One scope's daily spend series: learn each closed day, project the period's end."""

    def use_holidays(self, holidays: frozenset[date]) -> None:
        """The org's holiday calendar as it stands (a calendar set or changed applies from the next day learnt
        and to every projection; days learnt before keep what they were learnt as)."""
        self.holidays = holidays
        if self.trend is not None:
            self.trend.holidays = holidays

    def __init__(self, holidays: frozenset[date] = frozenset(), kind: str = "changepoint") -> None:
        if kind not in ("changepoint", "holt_winters"):
            raise ValueError("kind: changepoint or holt_winters")
        self.kind = kind
        self.holidays = holidays
        self.trend = ChangepointTrend(holidays) if kind == "changepoint" else None
        self.hw = (
            time_series.HoltWinters(alpha=0.2, beta=0.01, gamma=0.15, seasonality=SEASON, multiplicative=True)
            if kind == "holt_winters"
            else None
        )
        self.holiday_factor = 0.5  # holt_winters: what a holiday keeps of a normal day
        self.weeks: array[float] = array("d")  # holt_winters: holiday-adjusted weekly totals, the last 12
        self.week_total = 0.0
        self.residuals: array[float] = array("d")
        # the last 28 days' spend, and per day the (expected, log sd) forecast made that day for the 7, 14, 21
        # and 28 days after it; arrays, not deques of tuples: a scope's state stays a few KB
        self.recent: array[float] = array("d")
        self.pending: array[float] = array("f")
        self.last_day: date | None = None
        self.days = 0

    def weekly_growth(self) -> float:
        """The learnt trend as a share of the level, per week (0.05: spend grows 5 % a week); 0 until known."""
        if self.trend is not None:
            return self.trend.weekly_growth()
        hw = self.hw
        if hw is None or not hw.trend or not hw.level or not hw.level[-1]:
            return 0.0
        return float(hw.trend[-1]) / float(hw.level[-1]) * 7

    # -- learning -----------------------------------------------------------------------------------

    def learn_day(self, day: date, spend: float, calibrator: Calibrator | None = None) -> None:
        """Fold in a closed day's total. Days come in order; a gap is learnt as zero-spend days; a day
        seen already is ignored, so replaying days is harmless."""
        if self.last_day is not None:
            if day <= self.last_day:
                return
            for missing in range(1, (day - self.last_day).days):
                self._learn(self.last_day + timedelta(days=missing), 0.0, calibrator)
        self._learn(day, spend, calibrator)

    def _learn(self, day: date, spend: float, calibrator: Calibrator | None) -> None:
        _push(self.recent, RECENT, spend)
        if calibrator is not None:
            per_day = 2 * len(HORIZONS)
            made = len(self.pending) // per_day  # days with forecasts, the newest last
            for i, horizon in enumerate(HORIZONS):
                if made >= horizon and len(self.recent) >= horizon:
                    # the forecast made ``horizon`` days ago, for the days that end today
                    at = (made - horizon) * per_day + 2 * i
                    actual = sum(self.recent[-horizon:])
                    calibrator.check(horizon, actual, self.pending[at], self.pending[at + 1])
        if self.trend is not None:
            self.trend.learn_one(spend, {"day": day})
        else:
            self._learn_hw(day, spend)
        self.last_day = day
        self.days += 1
        if self.days >= SEASON:
            start = day + timedelta(days=1)
            forecasts = []
            for horizon in HORIZONS:
                forecasts += [self.expected(start, horizon), self._log_sd(horizon)]
            _push(self.pending, RECENT * len(forecasts), *forecasts)

    def _learn_hw(self, day: date, spend: float) -> None:
        assert self.hw is not None
        factor = self.holiday_factor if day in self.holidays else 1.0
        if self.days >= SEASON:
            predicted = max(self.hw.forecast(horizon=1)[0], 0.0) * factor
            self.residuals.append(max(-3.0, min(3.0, math.log((spend + 1.0) / (predicted + 1.0)))))
            if len(self.residuals) > RESIDUALS:
                del self.residuals[0]
            if day in self.holidays and predicted > 0:
                ratio = min(2.0, spend / (predicted / factor))
                self.holiday_factor = 0.5 * self.holiday_factor + 0.5 * ratio
        floor = max(1.0, 0.02 * sum(self.recent) / len(self.recent))
        self.hw.learn_one(max(spend / factor, floor))  # a zero would wreck a multiplicative season
        if self.days + 1 == SEASON and self.hw.trend is not None:
            # River starts the trend at the mean step of the first week, mostly the weekly season
            # (Friday to Saturday...), which then decays slowly: start flat instead.
            self.hw.trend[-1] = 0.0
        self.week_total += spend / factor
        if (self.days + 1) % SEASON == 0:
            _push(self.weeks, TREND_WEEKS, self.week_total)
            self.week_total = 0.0
            slope = theil_sen_log_slope(self.weeks)
            if slope is not None and self.hw.trend is not None and self.hw.level:
                self.hw.trend[-1] = self.hw.level[-1] * slope / SEASON * TREND_SHRINK

    # -- projecting ---------------------------------------------------------------------------------

    def expected(self, start: date, days: int) -> float:
        """Expected spend of ``days`` days from ``start`` (the day after the last learnt one, or later)."""
        if days <= 0:
            return 0.0
        if self.days < SEASON:
            mean = sum(self.recent) / len(self.recent) if self.recent else 0.0
            return mean * days
        offset = (start - self.last_day).days - 1 if self.last_day else 0
        if self.trend is not None:
            xs = [{"day": start + timedelta(days=i)} for i in range(days)]
            return sum(self.trend.forecast(days, xs))
        assert self.hw is not None
        values: list[float] = self.hw.forecast(horizon=offset + days)[offset:]
        return sum(
            max(0.0, float(v)) * (self.holiday_factor if start + timedelta(days=i) in self.holidays else 1.0)
            for i, v in enumerate(values)
        )

    def _log_sd(self, days: float) -> float:
        if self.trend is not None:
            return self.trend.sum_log_sd(days)
        n = len(self.residuals)
        if n < 3:
            return 0.5
        mean = sum(self.residuals) / n
        spread = max(0.05, math.sqrt(sum((r - mean) ** 2 for r in self.residuals) / (n - 1)))
        return spread * math.sqrt(PERSIST + (1.0 - PERSIST) / max(days, 1.0))

    def project(
        self,
        today: date,
        period_end: date,
        spent: float,
        today_spent: float,
        day_fraction: float,
        calibrator: Calibrator | None = None,
    ) -> Projection:
        """The period's end seen during ``today`` (``day_fraction`` of it gone), with ``spent`` so far
        in the period (``today_spent`` of it today), its interval scaled by ``calibrator`` for the days left.
        ``period_end`` is the period's last day. The days before ``today`` must have been learnt."""
        days_after = max(0, (period_end - today).days)
        today_expected = self.expected(today, 1)
        rest_today = max(0.0, today_expected * (1.0 - day_fraction))
        if day_fraction > 0 and today_spent > today_expected * day_fraction > 0:
            rest_today *= min(3.0, today_spent / (today_expected * day_fraction))  # a busy day stays busy
        expected = rest_today + self.expected(today + timedelta(days=1), days_after)
        days_left = days_after + (1.0 - day_fraction)
        low = high = 0.0
        if expected > 0 and days_left > 0:
            sigma = self._log_sd(days_left) * (calibrator.scale(days_left) if calibrator else 1.0)
            low, high = expected * math.exp(-Z80 * sigma), expected * math.exp(Z80 * sigma)
        return Projection(spent, spent + low, spent + expected, spent + high, days_left)

    def runs_out(self, today: date, period_end: date, spent: float, budget: float) -> date | None:
        """The first day whose expected cumulative spend reaches ``budget`` (None: not this period)."""
        if spent >= budget:
            return today
        running = spent
        for i in range((period_end - today).days + 1):
            day = today + timedelta(days=i)
            running += self.expected(day, 1) * (0.5 if i == 0 else 1.0)
            if running >= budget:
                return day
        return None
