"""What a cap check answers: the Decision, and what a settle reports.

Immutable msgspec structs, untracked by the garbage collector (they hold no cycles): one decision
builds four of them and a settle one per event, and a frozen dataclass costs several times as much to
make.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = ["BudgetState", "Decision", "Outcome", "SettleResult", "StageCrossing"]


class Outcome(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    FAIL_OPEN = "fail_open"  # Redis unreachable and the org's policy lets requests through
    FAIL_CLOSED = "fail_closed"  # Redis unreachable and the org's policy denies (the default)
    UNCONFIGURED = "unconfigured"  # an org nobody configured: no budget applies, admitted and counted
    UNKNOWN_ORG = "unknown_org"  # an org nobody configured, refused by the operator's unknown_orgs: deny


class BudgetState(msgspec.Struct, frozen=True, gc=False):
    """One budget of the subject as the decision saw it (nano-USD)."""

    scope: str  # "<kind>/<id>"
    period: str  # daily | weekly | monthly
    limit: int
    mode: str  # hard | soft
    spent: int
    reserved: int
    resets_at_ms: int

    @property
    def remaining(self) -> int:
        return self.limit - self.spent - self.reserved


class Decision(msgspec.Struct, frozen=True, gc=False):
    allowed: bool
    outcome: Outcome
    reason: str
    request_id: str
    estimate: int
    blocking: BudgetState | None = None
    budgets: tuple[BudgetState, ...] = ()
    replayed: bool = False  # the request_id was already admitted

    @property
    def remaining(self) -> dict[str, int]:
        """Remaining nano-USD per ``<kind>/<id>/<period>``."""
        return {f"{b.scope}/{b.period}": b.remaining for b in self.budgets}

    def to_dict(self) -> dict[str, object]:
        blocking = self.blocking
        return {
            "allowed": self.allowed,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "request_id": self.request_id,
            "estimate_nanos": self.estimate,
            "blocking": None
            if blocking is None
            else {
                "scope": blocking.scope,
                "period": blocking.period,
                "limit_nanos": blocking.limit,
                "spent_nanos": blocking.spent,
                "reserved_nanos": blocking.reserved,
                "resets_at_ms": blocking.resets_at_ms,
            },
            "remaining_nanos": self.remaining,
        }


class StageCrossing(msgspec.Struct, frozen=True, gc=False):
    scope: str
    period: str
    stage: int
    limit: int
    spent: int


class SettleResult(msgspec.Struct, frozen=True, gc=False):
    applied: bool  # counted now
    duplicate: bool  # another event with this event_id was counted
    stale: bool  # this stream offset was applied before (a redelivery)
    released_reservation: bool
    crossings: tuple[StageCrossing, ...] = ()
    sink: bool = False  # the stream should store this event (first time for this event id)
    conflict_with: str | None = None  # a copy whose content differs from the first's ("<partition>:<offset>")
