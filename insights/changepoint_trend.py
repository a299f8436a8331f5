"""A River forecaster for daily spend: a log-linear trend with a weekly season, holidays and the latest level shift.

Over the last ``window`` days, ``log(spend) = a + b t + season[weekday] + h holiday + c [t >= k] + noise``,
fitted by least squares each time a day is learnt. ``k`` is the day the level most likely shifted (a team
joined, a feature launched, a batch job stopped): of every candidate day, the one whose step explains the
most, kept only when it explains enough to beat chance (a BIC test); without one, ``c`` is 0. So a steady
series is averaged over the whole window (its level known to a few percent at 15 % daily noise, where an
exponential smoother following recent days knows it to five), and a series that stepped is projected from
its level since the step, with the season and growth learnt from all of it.

It implements River's ``Forecaster`` interface (``learn_one(y, x)`` and ``forecast(horizon, xs)``), with
``x = {"day": date}`` telling the calendar day; :meth:`sum_log_sd` says how uncertain a sum of days is.
"""

from __future__ import annotations

import math
from array import array
from datetime import date, timedelta
from typing import Any

import numpy as np
from river.time_series.base import Forecaster

__all__ = ["ChangepointTrend"]

WINDOW = 112  # days fitted: sixteen weeks
COLUMNS = 9  # 1, t, Tuesday..Sunday (Monday is the base), holiday; a step adds a tenth
STEP_MIN_AFTER = 2  # a step needs this many days after it
STEP_BIC = 4.0  # what a step must gain in n log(RSS) beyond the BIC cost of its parameters
# Priors, as rows added to the least squares (a row of weight w pulls a coefficient to its target as w^2 days
# of data would): the slope towards flat, the weekdays towards Monday, a holiday towards half a day; they
# matter while the window is short and are outweighed within weeks.
SLOPE_PRIOR = 10.0
WEEKDAY_PRIOR = 0.4
HOLIDAY_PRIOR = 1.0
PRIOR_ROWS = np.zeros((8, COLUMNS))
PRIOR_ROWS[0, 1] = SLOPE_PRIOR
for _i in range(6):
    PRIOR_ROWS[1 + _i, 2 + _i] = WEEKDAY_PRIOR
PRIOR_ROWS[7, 8] = HOLIDAY_PRIOR
PRIOR_TARGETS = np.array([0.0] * 7 + [HOLIDAY_PRIOR * math.log(0.5)])


class ChangepointTrend(Forecaster):
    def __init__(self, holidays: frozenset[date] = frozenset(), window: int | None = None) -> None:
        self._holidays = holidays
        self.window = window or WINDOW
        self.values: array[float] = array("d")  # the last ``window`` days' spend, oldest first
        self.last_day: date | None = None
        self.coef: list[float] = []  # a, b, season Tuesday..Sunday, holiday, step
        self.step_at = -1  # index in the window of the step's first day (-1: none)
        self.noise = 0.04  # variance of the log noise
        self.floor = 1.0
        self.var_level = self.var_slope = self.t_mean = 0.0
        self._fitted_to: date | None = None

    @property
    def holidays(self) -> frozenset[date]:
        return self._holidays

    @holidays.setter
    def holidays(self, holidays: frozenset[date]) -> None:
        """A calendar set or changed refits on the next forecast (every day in the window is seen anew)."""
        if holidays != self._holidays:
            self._holidays = holidays
            self._fitted_to = None

    def weekly_growth(self) -> float:
        """The fitted trend per week (0.05: 5 % a week), 0 before a fit."""
        self._fit()
        return math.exp(7 * self.coef[1]) - 1.0 if self.coef else 0.0

    # -- River's interface --------------------------------------------------------------------------

    def learn_one(self, y: float, x: dict[str, Any] | None = None) -> None:
        day: date = (x or {}).get("day") or ((self.last_day + timedelta(days=1)) if self.last_day else date.today())
        self.values.append(max(float(y), 0.0))
        if len(self.values) > self.window:
            del self.values[0]
        self.last_day = day

    def forecast(self, horizon: int, xs: list[dict[str, Any]] | None = None) -> list[float]:
        """Expected spend (the log-normal mean, not the median) of each of the next ``horizon`` days."""
        self._fit()
        start = (self.last_day or date.today()) + timedelta(days=1)
        out = []
        for h in range(horizon):
            day = (xs[h]["day"] if xs and h < len(xs) else None) or start + timedelta(days=h)
            out.append(self._expected(day))
        return out

    # -- fitting ------------------------------------------------------------------------------------

    def _design(self, days: list[date]) -> np.ndarray:
        """Rows of (1, t, Tuesday..Sunday, holiday) for ``days``, t in days from the last learnt day."""
        assert self.last_day is not None
        rows = np.zeros((len(days), COLUMNS))
        for i, day in enumerate(days):
            rows[i, 0] = 1.0
            rows[i, 1] = (day - self.last_day).days
            if day in self.holidays:
                rows[i, 8] = 1.0
            elif day.weekday():
                rows[i, 1 + day.weekday()] = 1.0
        return rows

    def _fit(self) -> None:
        if self.last_day is None or self._fitted_to == self.last_day:
            return
        self._fitted_to = self.last_day
        n = len(self.values)
        days = [self.last_day - timedelta(days=n - 1 - i) for i in range(n)]
        positive = [v for v in self.values if v > 0]
        self.floor = 0.02 * sum(positive) / len(positive) if positive else 1.0  # a zero day has no log
        y = np.append(np.log(np.asarray(self.values) + self.floor), PRIOR_TARGETS)
        x = np.vstack([self._design(days), PRIOR_ROWS])
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        residual = y - x @ coef
        rss = float(residual[:n] @ residual[:n])
        step_at = self._step(x, residual, rss, n)
        if step_at >= 0:
            x = np.hstack([x, np.zeros((len(y), 1))])
            x[step_at:n, -1] = 1.0
            coef, *_ = np.linalg.lstsq(x, y, rcond=None)
            residual = y - x @ coef
            rss = float(residual[:n] @ residual[:n])
        self.coef = [float(c) for c in coef] + ([] if step_at >= 0 else [0.0])
        self.step_at = step_at
        self.noise = max(rss / max(n - len(coef), 3), 1e-4)
        # the doubt of the level where the projection starts, from the days since the step (or all), and of
        # the slope, from all of them
        since = n - max(step_at, 0)
        t = x[:n, 1]
        spread = float(((t - t.mean()) ** 2).sum()) + SLOPE_PRIOR**2
        self.var_level = self.noise / max(since, 1)
        self.var_slope = self.noise / spread
        self.t_mean = float(t[max(step_at, 0) :].mean())

    def _step(self, x: np.ndarray, residual: np.ndarray, rss: float, n: int) -> int:
        """The index of the day the level most likely shifted, or -1: every candidate at once, the RSS a step
        at k saves being (d_k' M y)^2 / (d_k' M d_k), M the residual maker of the design without a step."""
        first, last = 7, n - STEP_MIN_AFTER
        if last <= first or rss <= 0:
            return -1
        steps = np.zeros((len(x), last - first + 1))
        for j, k in enumerate(range(first, last + 1)):
            steps[k:n, j] = 1.0
        fitted, *_ = np.linalg.lstsq(x, steps, rcond=None)
        made = steps - x @ fitted
        gains = (made.T @ residual) ** 2 / np.maximum(np.einsum("ij,ij->j", steps, made), 1e-12)
        j = int(np.argmax(gains))
        saved = min(float(gains[j]), rss * (1 - 1e-9))
        return first + j if n * math.log(rss / (rss - saved)) > 2 * math.log(n) + STEP_BIC else -1

    def _log_mean(self, day: date) -> float:
        assert self.last_day is not None
        c = self.coef
        mean = c[0] + c[1] * (day - self.last_day).days + c[9]
        if day in self.holidays:
            mean += c[8]
        elif day.weekday():
            mean += c[1 + day.weekday()]
        return mean

    def _expected(self, day: date) -> float:
        if not self.coef:
            return 0.0
        return max(0.0, math.exp(self._log_mean(day) + self.noise / 2) - self.floor)

    def sum_log_sd(self, days: float) -> float:
        """The log standard deviation of a sum of ``days`` days ahead: the level and slope's doubt, which every
        day shares, and the day noise, which averages out."""
        self._fit()
        if days <= 0 or not self.coef:
            return 0.0
        ahead = (days + 1) / 2 - self.t_mean
        shared = self.var_level + ahead * ahead * self.var_slope
        return math.sqrt(shared + self.noise / max(days, 1.0))
