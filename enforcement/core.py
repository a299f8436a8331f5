"""The cap logic without I/O: builds each script call and reads its reply.

The sync and async clients are thin adapters over this core: they send
``call.keys`` and ``call.args`` to ``EVALSHA`` and hand the reply back to
``parse_*``. Nothing here touches a socket, so all of it is tested directly.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

from enforcement.decision import BudgetState, Decision, Outcome, SettleResult, StageCrossing
from enforcement.keys import KeyLayout, PeriodKeys, Subject, SubjectError, fingerprint

__all__ = [
    "DUPLICATE_WINDOW_S",
    "MAX_ESTIMATE_NANOS",
    "ScriptCall",
    "parse_reserve",
    "parse_settle",
    "release_call",
    "reserve_call",
    "settle_call",
]

MAX_ESTIMATE_NANOS = 10_000 * 1_000_000_000  # one request estimated above 10,000 USD is a bug
MAX_SAFE_NANOS = 2**53 - 1  # Lua numbers are doubles
DUPLICATE_WINDOW_S = 24 * 3600
SPENT_RETENTION_S = 35 * 24 * 3600
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,127}$")


@dataclass(frozen=True, slots=True)
class ScriptCall:
    keys: list[str]
    args: list[str | int | bytes]


def _request_id(value: str) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.match(value):
        raise SubjectError("request_id", "must be 1-128 of A-Z a-z 0-9 _ . @ + -")
    return value


def _amount(name: str, value: int, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SubjectError(name, "must be an int of nano-USD")
    if value < 0:
        raise SubjectError(name, "must be >= 0")
    if value > upper:
        raise SubjectError(name, f"{value} nano-USD is beyond the {upper} allowed")
    return value


def reserve_call(
    layout: KeyLayout, subject: Subject, request_id: str, estimate: int, ttl_ms: int, periods: PeriodKeys
) -> ScriptCall:
    _request_id(request_id)
    _amount("estimate", estimate, MAX_ESTIMATE_NANOS)
    if not 1_000 <= ttl_ms <= 3_600_000:
        raise SubjectError("ttl_ms", "must be between 1 s and 1 h")
    org = subject.org_id
    resv, resv_exp = layout.reservations(org)
    keys = [layout.budgets(org), layout.reserved(org), resv, resv_exp, layout.stats(org), *layout.spent(org, periods)]
    return ScriptCall(keys, [request_id, estimate, ttl_ms, *subject.scopes()])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _split_field(budget_field: str) -> tuple[str, str]:
    scope, _, period = budget_field.rpartition("/")
    return scope, period


def _resets(periods: PeriodKeys, period: str) -> int:
    return {"daily": periods.day_end_ms, "weekly": periods.week_end_ms}.get(period, periods.month_end_ms)


def parse_reserve(reply: list[object], request_id: str, estimate: int, periods: PeriodKeys) -> Decision:
    outcome, blocking_index = int(reply[0]), int(reply[1])  # type: ignore[call-overload]
    budgets = []
    rest = reply[4:]
    for i in range(0, len(rest), 5):
        name = _text(rest[i])
        mode = _text(rest[i + 2])
        scope, period = _split_field(name)
        budgets.append(
            BudgetState(
                scope=scope,
                period=period,
                limit=int(rest[i + 1]),  # type: ignore[call-overload]
                mode=mode,
                spent=int(rest[i + 3]),  # type: ignore[call-overload]
                reserved=int(rest[i + 4]),  # type: ignore[call-overload]
                resets_at_ms=_resets(periods, period),
            )
        )
    if outcome == 0:
        blocking = budgets[blocking_index - 1]
        reason = (
            f"{blocking.scope} {blocking.period} hard cap: limit {blocking.limit} nano-USD, "
            f"spent {blocking.spent}, reserved {blocking.reserved}, this request needs {estimate}"
        )
        return Decision(False, Outcome.DENIED, reason, request_id, estimate, blocking, tuple(budgets))
    reason = "already admitted" if outcome == 2 else ("within every cap" if budgets else "no budget applies")
    return Decision(True, Outcome.ALLOWED, reason, request_id, estimate, None, tuple(budgets), replayed=outcome == 2)


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
) -> ScriptCall:
    """``periods`` are those of ``occurred_at`` in the org's time zone: spend lands in the period it happened."""
    _amount("cost", cost, MAX_SAFE_NANOS)
    if request_id is not None:
        _request_id(request_id)
    if not isinstance(event_id, str) or not event_id:
        raise SubjectError("event_id", "required")
    org = subject.org_id
    print_ = fingerprint(event_id)
    resv, resv_exp = layout.reservations(org)
    keys = [
        layout.budgets(org),
        layout.reserved(org),
        resv,
        resv_exp,
        layout.stats(org),
        *layout.spent(org, periods),
        layout.seen(org, occurred_at, print_),
        layout.stages(org, periods),
        layout.watermarks(org),
    ]
    # The window runs from the later of the event's hour and its arrival: a late event is remembered too.
    hour_end = max(int(occurred_at.timestamp()) // 3600 * 3600 + 3600, int(time.time()))
    args: list[str | int | bytes] = [
        request_id or "",
        cost,
        print_,
        hour_end + window_s,
        periods.day_end_ms // 1000 + SPENT_RETENTION_S,
        periods.week_end_ms // 1000 + SPENT_RETENTION_S,
        periods.month_end_ms // 1000 + SPENT_RETENTION_S,
        f"{periods.day}|{periods.week}|{periods.month}",
        "" if partition is None else str(partition),
        -1 if offset is None else offset,
        *subject.scopes(),
    ]
    return ScriptCall(keys, args)


def parse_settle(reply: list[object]) -> SettleResult:
    outcome, released = int(reply[0]), bool(int(reply[1]))  # type: ignore[call-overload]
    sink = bool(int(reply[2]))  # type: ignore[call-overload]
    crossings = []
    rest = reply[3:]
    for i in range(0, len(rest), 4):
        name = _text(rest[i])
        scope, period = _split_field(name)
        crossings.append(
            StageCrossing(scope, period, int(rest[i + 1]), int(rest[i + 2]), int(rest[i + 3]))  # type: ignore[call-overload]
        )
    return SettleResult(
        applied=outcome == 1,
        duplicate=outcome == 0,
        stale=outcome == -1,
        released_reservation=released,
        crossings=tuple(crossings),
        sink=sink,
        counted_via_api=outcome == 2,
    )


def release_call(layout: KeyLayout, org_id: str, request_id: str) -> ScriptCall:
    _request_id(request_id)
    Subject(org_id=org_id, user_id="release")  # validates org_id
    resv, resv_exp = layout.reservations(org_id)
    return ScriptCall([layout.reserved(org_id), resv, resv_exp, layout.stats(org_id)], [request_id])
