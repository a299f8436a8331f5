"""Spike detection per entity and bucket, online, explaining itself.

One :class:`SpikeDetector` watches one bucket size (a minute, an hour) for
many entities (``user/ada``, ``department/eng``, ``model/gpt-4o``...). Per
entity it keeps exponentially weighted means of the bucket's cost and of its
absolute deviation, one pair per season when the detector has seasons: an
hourly detector with 48 compares a weekday's 9:00 with earlier weekdays' 9:00s,
so the morning ramp-up and the quiet weekend are not spikes. A bucket is a spike when its cost is at least
``ratio`` times what was expected *and* ``k`` deviations above it *and* at
least ``min_cost``; the flagged bucket teaches the means only up to the
threshold, so one spike does not hide the next. Buckets with no usage must be
fed as zeros (:meth:`SpikeDetector.idle`), so quiet time counts.

A spike says which entity, how far above expected (observed, expected and
their ratio), and which part of the bucket drove it: the largest of the parts
given (the runner gives every other dimension's, ``user/ada``, ``model/gpt-4o``).
"""

from __future__ import annotations

import pickle
from array import array
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["WEEKDAY_HOURS", "Spike", "SpikeDetector"]

WEEKDAY_HOURS = 48  # seasons: hour of day, weekdays and weekends apart


@dataclass(frozen=True, slots=True)
class Spike:
    entity: str
    bucket: int  # the bucket's start, in the caller's unit (epoch seconds in spendstream)
    observed: float
    expected: float
    score: float  # deviations above expected
    driver: str  # the part of the bucket with the largest cost ("" when none was given)
    driver_share: float

    @property
    def ratio(self) -> float:
        return self.observed / self.expected if self.expected > 0 else float("inf")


class _Entity:
    """Per season, an exponentially weighted mean of the bucket's cost and of its absolute deviation (River's
    ``stats.EWMean`` rule, ``mean += fading x (x - mean)`` from the first value), in flat arrays: an hour-of-week
    detector holds 168 seasons per entity, and River's objects would cost 54 KB an entity where these cost 3."""

    __slots__ = ("counts", "deviations", "last", "means", "n")

    def __init__(self, seasons: int) -> None:
        self.means = array("d", bytes(8 * seasons))
        self.deviations = array("d", bytes(8 * seasons))
        self.counts = array("H", bytes(2 * seasons))  # buckets learnt per season, held at 65535
        self.n = 0
        self.last = -1

    def expected(self, season: int) -> float:
        return self.means[season] if self.counts[season] else 0.0


class SpikeDetector:
    def __init__(
        self,
        fading: float = 0.1,
        ratio: float = 5.0,
        k: float = 6.0,
        min_cost: float = 0.0,
        warmup: int = 10,
        max_entities: int = 100_000,
        seasons: int = 1,
        bucket_s: int = 60,
    ) -> None:
        self.fading = fading
        self.ratio = ratio
        self.k = k
        self.min_cost = min_cost
        self.warmup = warmup
        self.max_entities = max_entities  # beyond this the longest-idle entity is forgotten
        if seasons < 1 or seasons > 65_535:
            raise ValueError("seasons: from 1 to 65535")
        self.seasons = seasons  # buckets of one season share a baseline: 48 for hour of day, weekdays apart
        self.bucket_s = bucket_s  # what one bucket spans, in the unit of ``bucket``
        self.entities: OrderedDict[str, _Entity] = OrderedDict()

    def observe(
        self,
        entity: str,
        bucket: int,
        cost: float,
        parts: Mapping[str, float] | None = None,
        *,
        season: int | None = None,
        learn: bool = True,
    ) -> Spike | None:
        """Score one closed bucket of one entity against its season's baseline (``season``, or
        :meth:`season_of` the bucket in UTC), then learn it (unless ``learn`` is false: a holiday's quiet is
        not the norm of a weekday's hour). A bucket seen already is ignored."""
        state = self.entities.get(entity)
        if state is None:
            state = self.entities[entity] = _Entity(self.seasons)
            if len(self.entities) > self.max_entities:
                self.entities.popitem(last=False)
        else:
            self.entities.move_to_end(entity)
        if bucket <= state.last:
            return None
        state.last = bucket
        season = self.season_of(bucket) if season is None else season
        if not 0 <= season < self.seasons:
            raise ValueError(f"season: {season} is not one of this detector's {self.seasons}")
        seen = state.counts[season]
        expected = state.means[season] if seen else 0.0
        deviation = state.deviations[season] if seen else 0.0
        spread = max(deviation, 0.05 * expected, 1e-12)
        threshold = max(expected * self.ratio, expected + self.k * spread, self.min_cost)
        spike = None
        if seen >= self.warmup and cost > threshold and expected > 0:
            driver, share = "", 0.0
            if parts:
                driver = max(parts, key=lambda name: parts[name])
                share = parts[driver] / cost if cost > 0 else 0.0
            spike = Spike(entity, bucket, cost, expected, (cost - expected) / spread, driver, share)
        if not learn:
            return spike
        learnt = min(cost, threshold) if seen >= self.warmup else cost
        if seen:  # the first bucket of a season has nothing to deviate from; the second sets the deviation
            miss = abs(learnt - expected)
            state.deviations[season] = miss if seen == 1 else deviation + self.fading * (miss - deviation)
            state.means[season] += self.fading * (learnt - expected)
        else:
            state.means[season] = learnt
        state.counts[season] = min(seen + 1, 65_535)
        state.n += 1
        return spike

    def season_of(self, bucket: int) -> int:
        """The baseline a bucket is compared with: ``seasons`` 1 (one for all), 24 (hour of day), 48 (hour of
        day, weekdays apart from weekends) or 168 (hour of the week); ``bucket`` in epoch seconds (UTC)."""
        index = bucket // self.bucket_s
        if self.seasons != WEEKDAY_HOURS:
            return index % self.seasons
        hours = index * self.bucket_s // 3_600
        weekend = (hours // 24 + 3) % 7 >= 5  # 1970-01-01 was a Thursday
        return hours % 24 + (24 if weekend else 0)

    def idle(self, entity: str, bucket: int, *, season: int | None = None, learn: bool = True) -> None:
        """A bucket in which a known entity spent nothing."""
        if entity in self.entities:
            self.observe(entity, bucket, 0.0, season=season, learn=learn)

    def known(self) -> list[str]:
        return list(self.entities)

    # -- state --------------------------------------------------------------------------------------

    def dumps(self) -> bytes:
        return pickle.dumps(self)

    @staticmethod
    def loads(data: bytes) -> SpikeDetector:
        detector = pickle.loads(data)  # noqa: S301 - our own checkpoint, from our own Redis
        if not isinstance(detector, SpikeDetector):
            raise ValueError("not a SpikeDetector checkpoint")
        return detector
