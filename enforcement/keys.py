"""The Redis key layout of one org (the subjects whose spend it holds are ``enforcement.subject``).

Every key of an org carries the hash tag ``{org}``, so all of them live in
one Redis Cluster slot and one Lua call may touch them together::

    <prefix>:{<org>}:budgets          hash  <kind>/<id>/<period> -> "<limit>|<mode>|<stages>"
    <prefix>:{<org>}:org              hash  tz, policies, min estimate; "loaded" once its state is in Redis
                                            ("unconfigured" for an org with no config, counted by default)
    <prefix>:{<org>}:spent:d:<day>    hash  <kind>/<id> -> committed nano-USD that day
    <prefix>:{<org>}:spent:w:<week>   hash  ... that ISO week
    <prefix>:{<org>}:spent:m:<month>  hash  ... that month
    <prefix>:{<org>}:reserved         hash  <kind>/<id> -> nano-USD held by open reservations
    <prefix>:{<org>}:resv             hash  request_id -> "<expires_ms>|<amount>|<kind>/<id>,..."
    <prefix>:{<org>}:resv:exp         zset  request_id scored by expiry (lazy expiry, no sweeper)
    <prefix>:{<org>}:seen:<n>:<gen>  hash  event fingerprint -> content digest + first copy's origin
                                        (duplicate window; <gen>: the half day of arrival by Redis's clock)
    <prefix>:{<org>}:stages:<month>   hash  <kind>/<id>/<period>/<period key>/<stage> -> 1 (fires once)
    <prefix>:{<org>}:stats            hash  reserved, denied, expired, settled, duplicate counters
    <prefix>:{<org>}:wm               hash  <partition> -> highest applied offset
    <prefix>:state                    hash  run_id of the Redis process whose state was restored

Pure: builds names, never talks to Redis.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from enforcement.subject import SubjectError
from schemas.budgets import Period, period_bounds, period_key

__all__ = [
    "PERIOD_CODES",
    "KeyLayout",
    "PeriodKeys",
]

_PREFIX = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
PERIOD_CODES = {Period.DAILY: "d", Period.WEEKLY: "w", Period.MONTHLY: "m"}
_INDEX: dict[str, int] = {period.value: i for i, period in enumerate(PERIOD_CODES)}  # a Period finds its text
SEEN_SHARDS = 98_304  # per org and generation (half a day): ~440 fingerprints per hash at 1,000 events/s
# (12 x 8,192, as many hashes a half day as the hour-keyed layout had), small enough for listpack hashes


def _index(period: str | Period) -> int:
    """0, 1, 2 for daily, weekly, monthly; a ValueError names anything else (as ``Period(period)`` does,
    without building an enum member on the hot path)."""
    index = _INDEX.get(period)
    if index is None:
        raise ValueError(f"{period!r} is not a valid Period")
    return index


@dataclass(frozen=True, slots=True)
class PeriodKeys:
    """The day, week and month that contain one instant, in the org's time zone."""

    day: str
    week: str
    month: str
    day_end_ms: int
    week_end_ms: int
    month_end_ms: int

    @classmethod
    def at(cls, when: datetime, timezone: str) -> PeriodKeys:
        ends = [int(period_bounds(when, p, timezone)[1].timestamp() * 1000) for p in PERIOD_CODES]
        keys = [period_key(when, p, timezone) for p in PERIOD_CODES]
        return cls(keys[0], keys[1], keys[2], ends[0], ends[1], ends[2])

    def key(self, period: str | Period) -> str:
        """Which day, week or month a ``daily`` / ``weekly`` / ``monthly`` budget is in."""
        return (self.day, self.week, self.month)[_index(period)]

    def end_ms(self, period: str | Period) -> int:
        """When that period ends (ms since the epoch)."""
        return (self.day_end_ms, self.week_end_ms, self.month_end_ms)[_index(period)]


def fingerprint(event_id: str) -> bytes:
    """16 bytes of BLAKE2b: collisions are out of reach (2^-64 at 10^10 events)."""
    return hashlib.blake2b(event_id.encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class KeyLayout:
    prefix: str = "ss"
    seen_shards: int = SEEN_SHARDS  # hashes per org and generation in the duplicate window

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise SubjectError("key_prefix", "must be 1-32 of A-Z a-z 0-9 _ . -")

    def org(self, org_id: str) -> str:
        return f"{self.prefix}:{{{org_id}}}"

    def budgets(self, org_id: str) -> str:
        return f"{self.org(org_id)}:budgets"

    def org_settings(self, org_id: str) -> str:
        return f"{self.org(org_id)}:org"

    def spent(self, org_id: str, periods: PeriodKeys) -> tuple[str, str, str]:
        base = self.org(org_id)
        return (f"{base}:spent:d:{periods.day}", f"{base}:spent:w:{periods.week}", f"{base}:spent:m:{periods.month}")

    def spent_in(self, org_id: str, periods: PeriodKeys, period: str | Period) -> str:
        """The spend hash of one period (``spent`` gives all three)."""
        return self.spent(org_id, periods)[_index(period)]

    def reserved(self, org_id: str) -> str:
        return f"{self.org(org_id)}:reserved"

    def reservations(self, org_id: str) -> tuple[str, str]:
        base = self.org(org_id)
        return f"{base}:resv", f"{base}:resv:exp"

    def stats(self, org_id: str) -> str:
        return f"{self.org(org_id)}:stats"

    def stages(self, org_id: str, periods: PeriodKeys) -> str:
        return f"{self.org(org_id)}:stages:{periods.month}"

    def watermarks(self, org_id: str) -> str:
        return f"{self.org(org_id)}:wm"

    def seen(self, org_id: str, print_: bytes) -> str:
        """The duplicate-window shard of an event's fingerprint, without its generation: SETTLE appends
        ``:<generation>`` (the half window of arrival, by Redis's clock), and :meth:`seen_generation`
        names one for a rebuild. What the event says of its own time plays no part."""
        shard = int.from_bytes(print_[:4], "big") % self.seen_shards
        return f"{self.org(org_id)}:seen:{shard}"

    def seen_generation(self, org_id: str, print_: bytes, generation: int) -> str:
        return f"{self.seen(org_id, print_)}:{generation}"

    def alert_sent(self, org_id: str, digest: str) -> str:
        """One delivery of one alert to one target: its outcome, so a restart never sends it again."""
        return f"{self.org(org_id)}:alert:{digest}"

    def alerts_open(self, org_id: str) -> str:
        """hash dedup_key -> the PagerDuty incident it opened, until the condition clears."""
        return f"{self.org(org_id)}:alerts:open"

    def alerts_open_orgs(self) -> str:
        return f"{self.prefix}:alerts:open-orgs"

    def denied(self, org_id: str, field: str, period_key: str) -> str:
        """Set once by the first denial of a budget in a period."""
        return f"{self.org(org_id)}:denied:{field}:{period_key}"

    def denials(self) -> str:
        """list of first denials (JSON) for the worker to turn into alerts."""
        return f"{self.prefix}:alerts:denials"

    def forecast(self, org_id: str) -> str:
        """hash "<kind>/<id>/<period>" -> the latest projection (JSON), written by the worker's insights."""
        return f"{self.org(org_id)}:forecast"

    def state(self) -> str:
        """hash: the Redis process (run_id) whose state was last restored from config.v1 and ClickHouse."""
        return f"{self.prefix}:state"

    def state_lock(self) -> str:
        """Held by the one worker that restores a Redis which lost its state."""
        return f"{self.prefix}:state:lock"


__all__ += ["SEEN_SHARDS", "UNCONFIGURED", "fingerprint"]

UNCONFIGURED = "unconfigured"  # the "loaded" mark of an org nobody configured: the worker counts its spend
