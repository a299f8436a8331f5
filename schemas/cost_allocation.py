"""How an org charges its AI spend back to departments (pure): each department's cost-centre code, and
how the spend that no department owns is shared out, in proportion to each department's own spend or
in fixed percentages. Allocation is exact: the shares of every nano-USD add up to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.errors import SpendstreamError

__all__ = ["Chargeback", "ChargebackError", "allocate", "parse_chargeback"]


class ChargebackError(SpendstreamError):
    """A chargeback setting that cannot be used; ``field`` names it."""


@dataclass(frozen=True, slots=True)
class Chargeback:
    cost_centres: tuple[tuple[str, str], ...] = ()  # (department, code)
    shares: tuple[tuple[str, int], ...] = ()  # (department, percent); empty: proportional to usage
    expense_account: str = "6000"  # the general-ledger journal debits the charges here ...
    accrual_account: str = "2000"  # ... and credits their total here

    @property
    def rule(self) -> str:
        return "fixed shares" if self.shares else "proportional to usage"

    def code(self, department: str) -> str:
        return dict(self.cost_centres).get(department, "")

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cost_centres": dict(self.cost_centres)}
        out["unallocated"] = dict(self.shares) if self.shares else "proportional"
        out["accounts"] = {"expense": self.expense_account, "accrual": self.accrual_account}
        return out


def parse_chargeback(spec: Any, where: str) -> Chargeback:
    """``{cost_centres: {eng: CC-100}, unallocated: proportional | {eng: 60, sales: 40},
    accounts: {expense: "6420", accrual: "2100"}}``."""
    if not isinstance(spec, Mapping):
        raise ChargebackError(where, "expected a mapping with cost_centres and unallocated")
    unknown = set(spec) - {"cost_centres", "unallocated", "accounts"}
    if unknown:
        raise ChargebackError(f"{where}.{sorted(unknown)[0]}", "unknown key")
    centres = spec.get("cost_centres", {})
    if not isinstance(centres, Mapping) or any(not isinstance(v, str) or not v for v in centres.values()):
        raise ChargebackError(f"{where}.cost_centres", "a mapping of department to its cost-centre code")
    rule = spec.get("unallocated", "proportional")
    shares: tuple[tuple[str, int], ...] = ()
    if isinstance(rule, Mapping):
        if not rule or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in rule.values()):
            raise ChargebackError(f"{where}.unallocated", "percentages: whole numbers of 0 or more per department")
        if sum(rule.values()) != 100:
            raise ChargebackError(f"{where}.unallocated", f"the shares add up to {sum(rule.values())}, not 100")
        shares = tuple(sorted((str(k), int(v)) for k, v in rule.items()))
    elif rule != "proportional":
        raise ChargebackError(f"{where}.unallocated", "proportional, or a mapping of department to percent")
    accounts = spec.get("accounts", {})
    if not isinstance(accounts, Mapping) or set(accounts) - {"expense", "accrual"}:
        raise ChargebackError(f"{where}.accounts", "a mapping with expense and accrual account codes")
    if any(not isinstance(v, str) or not v for v in accounts.values()):
        raise ChargebackError(f"{where}.accounts", "account codes are non-empty strings")
    return Chargeback(
        tuple(sorted((str(k), str(v)) for k, v in centres.items())),
        shares,
        accounts.get("expense", "6000"),
        accounts.get("accrual", "2000"),
    )


def allocate(amount: int, weights: Mapping[str, int]) -> dict[str, int]:
    """``amount`` nano-USD split by ``weights``, exactly: each gets the floor of its share and the nano-USD
    left over go, one each, to the largest remainders (ties by name). No weight: nothing is allocated."""
    total = sum(weights.values())
    if total <= 0 or amount == 0:
        return dict.fromkeys(weights, 0)
    floors = {k: amount * w // total for k, w in weights.items()}
    left = amount - sum(floors.values())
    order = sorted(weights, key=lambda k: (-(amount * weights[k] % total), k))
    for k in order[:left]:
        floors[k] += 1
    return floors
