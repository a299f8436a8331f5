"""Spike detection per entity and bucket, online, explaining itself.

One :class:`SpikeDetector` watches one bucket size (a minute, an hour) for
many entities (``user/ada``, ``department/eng``, ``model/gpt-4o``...). Per
entity it keeps River exponentially weighted means of the bucket's cost and of
its absolute deviation, one pair per season when the detector has seasons: an
hourly detector with 24 compares 9:00 with earlier 9:00s, so the morning
ramp-up is not a spike. A bucket is a spike when its cost is at least
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
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from river import stats

__all__ = ["Spike", "SpikeDetector"]


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
    __slots__ = ("counts", "deviations", "fading", "last", "means", "n")

    def __init__(self, fading: float, seasons: int) -> None:
        self.fading = fading
        self.means: list[stats.EWMean | None] = [None] * seasons  # created when a season is first seen
        self.deviations: list[stats.EWMean | None] = [None] * seasons
        self.counts = [0] * seasons
        self.n = 0
        self.last = -1

    def pair(self, season: int) -> tuple[stats.EWMean, stats.EWMean]:
        mean, deviation = self.means[season], self.deviations[season]
        if mean is None or deviation is None:
            mean = self.means[season] = stats.EWMean(fading_factor=self.fading)
            deviation = self.deviations[season] = stats.EWMean(fading_factor=self.fading)
        return mean, deviation


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
        self.seasons = seasons  # buckets of one season share a baseline: 24 for hour of day
        self.bucket_s = bucket_s  # what one bucket spans, in the unit of ``bucket``
        self.entities: OrderedDict[str, _Entity] = OrderedDict()

    def observe(
        self, entity: str, bucket: int, cost: float, parts: Mapping[str, float] | None = None, *, learn: bool = True
    ) -> Spike | None:
        """Score one closed bucket of one entity, then learn it (unless ``learn`` is false: a holiday's quiet
        is not the norm of its hour). A bucket seen already is ignored."""
        state = self.entities.get(entity)
        if state is None:
            state = self.entities[entity] = _Entity(self.fading, self.seasons)
            if len(self.entities) > self.max_entities:
                self.entities.popitem(last=False)
        else:
            self.entities.move_to_end(entity)
        if bucket <= state.last:
            return None
        state.last = bucket
        season = (bucket // self.bucket_s) % self.seasons
        mean, deviations = state.pair(season)
        seen = state.counts[season]
        expected = mean.get() if seen else 0.0
        deviation = deviations.get() if seen else 0.0
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
        if seen:  # the first bucket of a season has nothing to deviate from
            deviations.update(abs(learnt - expected))
        mean.update(learnt)
        state.counts[season] += 1
        state.n += 1
        return spike

    def idle(self, entity: str, bucket: int, *, learn: bool = True) -> None:
        """A bucket in which a known entity spent nothing."""
        if entity in self.entities:
            self.observe(entity, bucket, 0.0, learn=learn)

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
