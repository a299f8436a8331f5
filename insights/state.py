"""What the insights have learnt, and how it is checkpointed. Pure: no I/O.

:class:`InsightState` holds every forecaster and spike detector. :func:`dump_state` writes it with a
version header; :func:`load_state` reads it back only when the version matches, and otherwise says
why it starts again (the models relearn from ClickHouse history), so a renamed field never silently
discards every model or, worse, restores a half-understood one. Change :data:`STATE_VERSION` with any
change to these classes or to the models they hold.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from functools import partial

from insights.forecast import Calibrator, SpendForecaster
from insights.spikes import WEEKDAY_HOURS, SpikeDetector
from schemas.money import parse_usd
from schemas.settings import InsightSettings

__all__ = [
    "HOUR",
    "HOURLY_FADING",
    "HOUR_KINDS",
    "MINUTE_KINDS",
    "STATE_VERSION",
    "CheckpointError",
    "InsightState",
    "Watch",
    "dump_state",
    "fresh_state",
    "load_state",
    "with_settings",
]

STATE_VERSION = 3  # 1: unversioned pickles; 2: hourly spikes by hour of day, Holt-Winters, one interval scale
_MAGIC = b"spendstream-insights\x00"
HOUR = 3600
HOURLY_FADING = 0.2  # an hour's norm weighs about its last five days of the same kind (weekday, day off) most
MINUTE_KINDS = frozenset({"user", "department", "model", "feature"})
HOUR_KINDS = frozenset({"org", "department", "user", "model", "feature"})


@dataclass
class Watch:
    """One bucket size's detector and where it has got to."""

    size: int  # seconds
    detector: SpikeDetector
    kinds: frozenset[str]  # the entity kinds it watches
    last_bucket: int = -1  # start (epoch s) of the last bucket scored
    live_from: int = 0  # buckets before this one (relearnt history) are learnt, not reported
    flagged: set[str] = field(default_factory=set)  # entities that spiked in that bucket


@dataclass
class InsightState:
    calibrator: Calibrator = field(default_factory=Calibrator)
    forecasters: dict[str, SpendForecaster] = field(default_factory=dict)  # "<org>|<kind>/<id>"
    watches: dict[int, Watch] = field(default_factory=dict)  # by bucket size in seconds
    alerted: set[str] = field(default_factory=set)  # projected_exceed alerts sent (dedup keys)


class CheckpointError(ValueError):
    """A checkpoint that is not restored; the message says why (the models start again)."""


def fresh_state(settings: InsightSettings) -> InsightState:
    """No history: a minute detector, and an hourly one (each hour against the same hour of earlier weekdays,
    or of earlier days off) when enabled."""
    floor = float(parse_usd(settings.spike_min_usd))
    detector_with = partial(SpikeDetector, min_cost=floor, max_entities=settings.max_entities)
    minute = settings.spike_bucket_s
    detector = detector_with(
        ratio=settings.spike_ratio, k=settings.spike_k, warmup=settings.spike_warmup, bucket_s=minute
    )
    watches = {minute: Watch(minute, detector, MINUTE_KINDS)}
    if settings.spike_hourly and minute != HOUR:
        hourly = detector_with(
            fading=HOURLY_FADING,
            ratio=settings.spike_hourly_ratio,
            k=settings.spike_hourly_k,
            warmup=settings.spike_hourly_warmup,
            seasons=WEEKDAY_HOURS,
            bucket_s=HOUR,
        )
        watches[HOUR] = Watch(HOUR, hourly, HOUR_KINDS)
    return InsightState(watches=watches)


def with_settings(state: InsightState, settings: InsightSettings) -> InsightState:
    """A restored state under today's settings: each detector takes the current thresholds (ratio, k,
    floor, warm-up, size limit), what they learnt stays; a bucket size no longer configured is dropped and
    a new one starts fresh. Without this, a checkpoint would keep the settings it was written with."""
    fresh = fresh_state(settings)
    watches: dict[int, Watch] = {}
    for size, wanted in fresh.watches.items():
        kept = state.watches.get(size)
        if kept is None or kept.kinds != wanted.kinds or kept.detector.seasons != wanted.detector.seasons:
            watches[size] = wanted
            continue
        for name in ("fading", "ratio", "k", "min_cost", "warmup", "max_entities"):
            setattr(kept.detector, name, getattr(wanted.detector, name))
        watches[size] = kept
    state.watches = watches
    return state


def dump_state(state: InsightState) -> bytes:
    return _MAGIC + STATE_VERSION.to_bytes(2, "big") + pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def load_state(raw: bytes) -> InsightState:
    """The state in a checkpoint; :class:`CheckpointError` naming why when it cannot be used."""
    if not raw.startswith(_MAGIC):
        raise CheckpointError("an unversioned checkpoint (written before version 2): the models start again")
    version = int.from_bytes(raw[len(_MAGIC) : len(_MAGIC) + 2], "big")
    if version != STATE_VERSION:
        raise CheckpointError(
            f"a version {version} checkpoint, this worker reads {STATE_VERSION}: the models start again"
        )
    try:
        state = pickle.loads(raw[len(_MAGIC) + 2 :])  # noqa: S301 - our own checkpoint, from our own Redis
    except Exception as exc:  # noqa: BLE001 - whatever makes it unreadable, the models start again
        raise CheckpointError(f"the checkpoint cannot be read ({exc}): the models start again") from None
    if not isinstance(state, InsightState):
        raise CheckpointError(f"the checkpoint holds a {type(state).__name__}, not the insights state")
    return state
