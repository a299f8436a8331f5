"""A River forecaster for daily spend: a local linear trend in log space, a weekly season, holidays.

``log(spend) = level + season[weekday] + holiday + noise``; level and slope
follow a Kalman filter (a random-walk level with a slowly moving slope), so a
steady series is averaged over weeks and a step change is followed within
days: two large innovations of one sign in a row open the level's variance.
The weekday season and the holiday effect are learnt from the residuals.

It implements River's ``Forecaster`` interface (``learn_one(y, x)`` and
``forecast(horizon, xs)``), with ``x = {"day": date}`` telling the calendar day.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

from river.time_series.base import Forecaster

__all__ = ["SeasonalLocalTrend"]


class SeasonalLocalTrend(Forecaster):
    def __init__(
        self,
        holidays: frozenset[date] = frozenset(),
        season_rate: float = 0.1,
        level_noise: float = 0.01,
        slope_noise: float = 1e-6,
        step_z: float = 2.5,
    ) -> None:
        self.holidays = holidays
        self.season_rate = season_rate
        self.level_noise = level_noise  # level variance added per day, as a share of the noise variance
        self.slope_noise = slope_noise
        self.step_z = step_z
        self.season = [0.0] * 7  # log factors by weekday, mean zero
        self.holiday = math.log(0.5)
        self.level = 0.0
        self.slope = 0.0
        self.p = [[1.0, 0.0], [0.0, 1e-4]]  # the state's covariance
        self.noise = 0.04  # variance of the log observation noise, learnt
        self.n = 0
        self.last_day: date | None = None
        self._big: float = 0.0  # the last large innovation (sign), for step detection

    # -- River's interface --------------------------------------------------------------------------

    def learn_one(self, y: float, x: dict[str, Any] | None = None) -> None:
        day: date = (x or {}).get("day") or ((self.last_day + timedelta(days=1)) if self.last_day else date.today())
        z = math.log(max(y, 0.0) + 1.0)
        effect = self._effect(day)
        if self.n == 0:
            self.level = z - effect
            self.n = 1
            self.last_day = day
            return
        # predict one day on
        p = self.p
        q_level = self.level_noise * self.noise
        q_slope = self.slope_noise * self.noise
        level = self.level + self.slope
        p00 = p[0][0] + 2 * p[0][1] + p[1][1] + q_level
        p01 = p[0][1] + p[1][1]
        p11 = p[1][1] + q_slope
        innovation = z - effect - level
        s = p00 + self.noise
        if self.n > 14 and abs(innovation) > self.step_z * math.sqrt(s) and day not in self.holidays:
            if self._big * innovation > 0:
                p00 += innovation * innovation  # a second large miss of the same sign: a step, open the level
                s = p00 + self.noise
            self._big = math.copysign(1.0, innovation)
        else:
            self._big = 0.0
        k0, k1 = p00 / s, p01 / s
        self.level = level + k0 * innovation
        self.slope += k1 * innovation
        self.p = [[(1 - k0) * p00, (1 - k0) * p01], [(1 - k0) * p01, p11 - k1 * p01]]
        residual = z - effect - self.level
        if day in self.holidays:
            self.holiday += 0.3 * residual
        else:
            w = day.weekday()
            self.season[w] += self.season_rate * residual
            mean = sum(self.season) / 7
            self.season = [v - mean for v in self.season]
        if self.n > 7 and day not in self.holidays:
            self.noise += 0.05 * (max(innovation * innovation - p00, 0.0025) - self.noise)
        self.n += 1
        self.last_day = day

    def forecast(self, horizon: int, xs: list[dict[str, Any]] | None = None) -> list[float]:
        """Expected spend (not the median) of each of the next ``horizon`` days."""
        start = (self.last_day or date.today()) + timedelta(days=1)
        out = []
        for h in range(horizon):
            day = (xs[h]["day"] if xs and h < len(xs) else None) or start + timedelta(days=h)
            ahead = (day - start).days + 1
            mean = self.level + self.slope * ahead + self._effect(day)
            variance = self.noise + self.p[0][0] + 2 * ahead * self.p[0][1] + ahead * ahead * self.p[1][1]
            out.append(max(0.0, math.exp(mean + variance / 2) - 1.0))
        return out

    # -- what the projection needs ------------------------------------------------------------------

    def _effect(self, day: date) -> float:
        return self.holiday if day in self.holidays else self.season[day.weekday()]

    def sum_log_sd(self, days: float) -> float:
        """The log standard deviation of a sum of ``days`` days ahead: the level and slope's doubt, which
        every day shares, and the day noise, which averages out."""
        if days <= 0:
            return 0.0
        mid = (days + 1) / 2
        shared = self.p[0][0] + 2 * mid * self.p[0][1] + mid * mid * self.p[1][1]
        return math.sqrt(max(shared, 0.0) + self.noise / max(days, 1.0))
