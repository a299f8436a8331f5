"""The cap logic without I/O: builds each script call and reads its reply.

The sync and async clients are thin adapters over this core: they send
``call.keys`` and ``call.args`` to ``EVALSHA`` and hand the reply back to
``parse_*``. Nothing here touches a socket, so all of it is tested directly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from enforcement.decision import BudgetState, Decision, Outcome, SettleResult, StageCrossing
from enforcement.keys import KeyLayout, PeriodKeys, fingerprint
from enforcement.subject import Subject, SubjectError
from schemas.events import ID_PATTERN

__all__ = [
    "DUPLICATE_WINDOW_S",
    "MAX_ESTIMATE_NANOS",
    "ScriptCall",
    "StateNotLoadedError",
    "check_amount",
    "parse_reserve",
    "parse_settle",
    "release_call",
    "reserve_call",
    "reserve_keys",
    "settle_call",
]

MAX_ESTIMATE_NANOS = 10_000 * 1_000_000_000  # one request estimated above 10,000 USD is a bug
MAX_SAFE_NANOS = 2**53 - 1  # Lua numbers are doubles
DUPLICATE_WINDOW_S = 24 * 3600  # a copy is recognised at least this long after the first arrived (at most 1.5x)
NO_DIGEST = bytes(8)  # the content of an event is not known (a direct settle): a copy is never a conflict
SPENT_RETENTION_S = 35 * 24 * 3600
_REQUEST_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True, slots=True)
class ScriptCall:
    keys: list[str]
    args: list[str | int | bytes]


def _request_id(value: str) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise SubjectError("request_id", "must be 1-128 of A-Z a-z 0-9 _ . @ + -")
    return value


def check_amount(name: str, value: int, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SubjectError(name, "must be an int of nano-USD")
    if value < 0:
        raise SubjectError(name, "must be >= 0")
    if value > upper:
        raise SubjectError(name, f"{value} nano-USD is beyond the {upper} allowed")
    return value


def request_digest(subject: Subject, estimate: int, unpriced: bool = False, scopes: list[str] | None = None) -> str:
    """What a reservation is for: its subject's scopes and its estimate. A retry of a request carries the
    same digest and is answered as already admitted; a different request under the same id is refused.
    ``scopes``: the subject's, when the caller has them already."""
    text = f"{estimate}|{int(unpriced)}|{','.join(subject.scopes() if scopes is None else scopes)}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def reserve_keys(layout: KeyLayout, org: str, periods: PeriodKeys) -> list[str]:
    """The keys a reserve of ``org`` touches in ``periods``: the same for every request of the org until a
    period turns, so a client may keep them (never change the list it is given)."""
    resv, resv_exp = layout.reservations(org)
    keys = [layout.budgets(org), layout.reserved(org), resv, resv_exp, layout.stats(org), *layout.spent(org, periods)]
    keys.append(layout.org_settings(org))
    return keys


def reserve_call(
    layout: KeyLayout,
    subject: Subject,
    request_id: str,
    estimate: int,
    ttl_ms: int,
    periods: PeriodKeys,
    unpriced: bool = False,
    keys: list[str] | None = None,
) -> ScriptCall:
    """``unpriced``: the model has no price and the org refuses such requests where a hard cap applies.
    ``keys``: :func:`reserve_keys` of the subject's org and ``periods``, when the caller keeps them."""
    _request_id(request_id)
    check_amount("estimate", estimate, MAX_ESTIMATE_NANOS)
    if not 1_000 <= ttl_ms <= 3_600_000:
        raise SubjectError("ttl_ms", "must be between 1 s and 1 h")
    if keys is None:
        keys = reserve_keys(layout, subject.org_id, periods)
    scopes = subject.scopes()
    digest = request_digest(subject, estimate, unpriced, scopes)
    return ScriptCall(keys, [request_id, estimate, ttl_ms, digest, int(unpriced), *scopes])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _split_field(budget_field: str) -> tuple[str, str]:
    scope, _, period = budget_field.rpartition("/")
    return scope, period


class StateNotLoadedError(RuntimeError):
    """The org's cap state is not in Redis (Redis lost its data, or the org's config was never applied)."""

    def __init__(self, org_id: str) -> None:
        super().__init__(f"the cap state of org {org_id} is not loaded in Redis")
        self.org_id = org_id


def parse_reserve(reply: list[object], request_id: str, estimate: int, periods: PeriodKeys) -> Decision | None:
    """The decision; None when the org's cap state is not loaded (the caller answers by the org's policy)."""
    outcome, blocking_index = int(reply[0]), int(reply[1])  # type: ignore[call-overload]
    if outcome == 5:
        return None
    if outcome == 4:
        reason = f"request_id {request_id} already holds a reservation for another subject or estimate"
        return Decision(False, Outcome.DENIED, reason, request_id, estimate)
    budgets = []
    ends: dict[str, int] = {}
    for i in range(4, len(reply), 5):
        scope, period = _split_field(_text(reply[i]))
        end = ends.get(period)
        if end is None:
            end = ends[period] = periods.end_ms(period)
        limit, mode, spent, reserved = reply[i + 1 : i + 5]
        budgets.append(BudgetState(scope, period, int(limit), _text(mode), int(spent), int(reserved), end))  # type: ignore[call-overload]
    if outcome in (0, 3):
        blocking = budgets[blocking_index - 1]
        if outcome == 3:
            reason = (
                f"{blocking.scope} {blocking.period} hard cap: the model has no price, so the request cannot be "
                "estimated, and the org refuses unpriced models under a hard cap"
            )
        else:
            reason = (
                f"{blocking.scope} {blocking.period} hard cap: limit {blocking.limit} nano-USD, "
                f"spent {blocking.spent}, reserved {blocking.reserved}, this request needs {estimate}"
            )
        return Decision(False, Outcome.DENIED, reason, request_id, estimate, blocking, tuple(budgets))
    reason = "already admitted" if outcome == 2 else ("within every cap" if budgets else "no budget applies")
    return Decision(True, Outcome.ALLOWED, reason, request_id, estimate, None, tuple(budgets), replayed=outcome == 2)


@dataclass(frozen=True, slots=True)
class SettleItem:
    """One request's actual cost. ``periods`` are those of ``occurred_at`` in the org's time zone:
    spend lands in the period it happened."""

    subject: Subject
    event_id: str
    occurred_at: datetime
    cost: int
    periods: PeriodKeys
    request_id: str | None = None
    partition: int | None = None
    offset: int | None = None
    digest: bytes = NO_DIGEST  # the content's digest (8 bytes): a copy with another one is a conflict


def _check_item(item: SettleItem) -> None:
    check_amount("cost", item.cost, MAX_SAFE_NANOS)
    if item.request_id is not None:
        _request_id(item.request_id)
    if not isinstance(item.event_id, str) or not item.event_id:
        raise SubjectError("event_id", "required")


class _SettleArgs:
    """The KEYS of one SETTLE call and its period and subject groups, each written once."""

    def __init__(self, layout: KeyLayout, org: str) -> None:
        self.layout, self.org = layout, org
        resv, resv_exp = layout.reservations(org)
        self.keys = [layout.budgets(org), layout.reserved(org), resv, resv_exp, layout.stats(org)]
        self.keys += [layout.watermarks(org), layout.org_settings(org)]
        self._index: dict[str, int] = {}
        self.periods: list[str] = []
        self.subjects: list[str] = []
        self.subject_tabs = 0
        self._period_groups: dict[PeriodKeys, int] = {}  # by value: equal objects share one group
        self._subject_groups: dict[Subject, int] = {}

    def key_index(self, key: str) -> int:
        position = self._index.get(key)
        if position is None:
            self.keys.append(key)
            position = self._index[key] = len(self.keys)  # Lua counts from 1
        return position

    def period_group(self, periods: PeriodKeys) -> int:
        group = self._period_groups.get(periods)
        if group is None:
            self.keys.extend(self.layout.spent(self.org, periods))  # day, week and month side by side
            first = len(self.keys) - 2
            stages = self.key_index(self.layout.stages(self.org, periods))  # shared by a month's days
            self.periods.append(
                f"{periods.day_end_ms // 1000 + SPENT_RETENTION_S}\t"
                f"{periods.week_end_ms // 1000 + SPENT_RETENTION_S}\t"
                f"{periods.month_end_ms // 1000 + SPENT_RETENTION_S}\t"
                f"{periods.day}|{periods.week}|{periods.month}\t{first}\t{stages}\t"
            )
            group = self._period_groups[periods] = len(self.periods)  # Lua counts from 1
        return group

    def subject_group(self, subject: Subject) -> int:
        group = self._subject_groups.get(subject)
        if group is None:
            scopes = subject.scopes()
            self.subjects.append(f"{len(scopes)}\t" + "".join(f"{scope}\t" for scope in scopes))
            self.subject_tabs += 1 + len(scopes)
            group = self._subject_groups[subject] = len(self.subjects)
        return group


def settle_batch_call(
    layout: KeyLayout, items: Sequence[SettleItem], window_s: int = DUPLICATE_WINDOW_S, validate: bool = True
) -> ScriptCall:
    """One ``SETTLE`` call for events of one org (all items must share ``subject.org_id``).

    Fields travel tab-separated in three arguments: packing one argument per field cost the stream
    worker more CPU than anything else it does per event, and splitting a string costs Redis less than
    creating as many arguments. What events share is written once: each distinct PeriodKeys (its
    counters' expiries, period keys and key indexes) and each distinct subject (its scopes) is a group,
    and an event names its two groups by number, so Redis splits eight fields per event, not twenty.
    Fingerprints are 16 raw bytes each, so they travel apart, side by side in one argument of their own.
    Duplicates are found by (org, event_id) alone, whatever time a copy carries; the window is measured
    from the first copy's arrival by Redis's clock (see the script's header). Digests travel like the
    fingerprints, 8 raw bytes each."""
    if not items:
        raise ValueError("a settle batch needs at least one item")
    org = items[0].subject.org_id
    args = _SettleArgs(layout, org)
    lines: list[str] = []
    prints: list[bytes] = []
    digests: list[bytes] = []
    for item in items:
        if validate:
            _check_item(item)
        if item.subject.org_id != org:
            raise ValueError("a settle batch holds one org's events")
        period_group, subject_group = args.period_group(item.periods), args.subject_group(item.subject)
        print_ = fingerprint(item.event_id)
        prints.append(print_)
        if len(item.digest) != len(NO_DIGEST):
            raise ValueError("a settle item's digest is 8 bytes")
        digests.append(item.digest)
        seen = args.key_index(layout.seen(org, print_))
        partition = "" if item.partition is None else item.partition
        offset = -1 if item.offset is None else item.offset
        lines.append(
            f"{item.request_id or ''}\t{item.cost}\t{period_group}\t{subject_group}\t{partition}\t{offset}\t{seen}\t"
        )
    events, groups, scopes = "".join(lines), "".join(args.periods), "".join(args.subjects)
    # identifiers never hold a tab (their patterns exclude it); one that did would shift every field
    if (
        events.count("\t") != 7 * len(items)
        or groups.count("\t") != 6 * len(args.periods)
        or scopes.count("\t") != args.subject_tabs
    ):
        raise SubjectError("settle", "an identifier holds a tab")
    return ScriptCall(args.keys, [len(items), window_s, events, b"".join(prints), groups, scopes, b"".join(digests)])


def settle_call(
    layout: KeyLayout,
    subject: Subject,
    event_id: str,
    occurred_at: datetime,
    cost: int,
    periods: PeriodKeys,
    request_id: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    window_s: int = DUPLICATE_WINDOW_S,
    digest: bytes = NO_DIGEST,
) -> ScriptCall:
    """A settle batch of one."""
    item = SettleItem(subject, event_id, occurred_at, cost, periods, request_id, partition, offset, digest)
    return settle_batch_call(layout, [item], window_s)


def parse_settle_batch(reply: Sequence[object], org_id: str = "") -> list[SettleResult]:
    """Each event's result; raises :class:`StateNotLoadedError` when the org's state was not loaded (and
    nothing was written)."""
    if len(reply) == 1 and int(reply[0]) == -2:  # type: ignore[call-overload]
        raise StateNotLoadedError(org_id)
    results = []
    plain: dict[tuple[object, object, object], SettleResult] = {}  # results without crossings: a few shapes, shared
    i = 0
    end = len(reply)
    while i < end:
        if int(reply[i]) == -3:  # type: ignore[call-overload]
            results.append(
                SettleResult(False, False, False, bool(int(reply[i + 1])), conflict_with=_text(reply[i + 4]))  # type: ignore[call-overload]
            )
            i += 5
            continue
        if int(reply[i + 3]) == 0:  # type: ignore[call-overload]
            shape = (reply[i], reply[i + 1], reply[i + 2])
            result = plain.get(shape)
            if result is None:
                result = plain[shape] = _settle_result(int(shape[0]), int(shape[1]), int(shape[2]), ())  # type: ignore[call-overload]
            results.append(result)
            i += 4
            continue
        outcome, released, sink, count = (int(v) for v in reply[i : i + 4])  # type: ignore[call-overload]
        i += 4
        crossings = []
        for _ in range(count):
            scope, period = _split_field(_text(reply[i]))
            crossings.append(
                StageCrossing(scope, period, int(reply[i + 1]), int(reply[i + 2]), int(reply[i + 3]))  # type: ignore[call-overload]
            )
            i += 4
        results.append(_settle_result(outcome, released, sink, tuple(crossings)))
    return results


def _settle_result(outcome: int, released: int, sink: int, crossings: tuple[StageCrossing, ...]) -> SettleResult:
    return SettleResult(
        applied=outcome == 1,
        duplicate=outcome == 0,
        stale=outcome == -1,
        released_reservation=bool(released),
        crossings=crossings,
        sink=bool(sink),
    )


def parse_settle(reply: Sequence[object]) -> SettleResult:
    return parse_settle_batch(reply)[0]


def release_call(layout: KeyLayout, org_id: str, request_id: str) -> ScriptCall:
    _request_id(request_id)
    Subject(org_id=org_id, user_id="release")  # validates org_id
    resv, resv_exp = layout.reservations(org_id)
    return ScriptCall([layout.reserved(org_id), resv, resv_exp, layout.stats(org_id)], [request_id])
