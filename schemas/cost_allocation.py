"""How an org charges its AI spend back to departments (pure): each department's cost-centre code, and
how the spend that no department owns is shared out, in proportion to each department's own spend or
in fixed percentages. Allocation is exact: the shares of every nano-USD add up to it.

An org that declared allocation tags may charge by one of them instead (``by: project``): the tag's values
take the departments' place, and spend the tag left ``(untagged)`` is what is shared out.

Spend that nothing can be shared to (no department had spend, and there are no fixed shares) is charged
to ``unallocated_cost_centre`` ("UNALLOCATED" unless set). A department without a code of its own is
charged to ``default_cost_centre``; without one, the general-ledger journal is refused, naming it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.allocation_tags import TAG_KEY_PATTERN
from schemas.errors import SpendstreamError
from schemas.events import ID_PATTERN

__all__ = ["Chargeback", "ChargebackError", "allocate", "parse_chargeback"]


_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/:-]{0,63}\Z")  # a cost centre or an account: "CC-1010", "6420"
_DEPARTMENT = re.compile(ID_PATTERN)  # or a tag's value, for a chargeback by tag: the same rules
_TAG_KEY = re.compile(TAG_KEY_PATTERN)


class ChargebackError(SpendstreamError):
    """A chargeback setting that cannot be used; ``field`` names it."""


@dataclass(frozen=True, slots=True)
class Chargeback:
    cost_centres: tuple[tuple[str, str], ...] = ()  # (department, code)
    shares: tuple[tuple[str, int], ...] = ()  # (department, percent); empty: proportional to usage
    expense_account: str = "6000"  # the general-ledger journal debits the charges here ...
    accrual_account: str = "2000"  # ... and credits their total here
    default_cost_centre: str = ""  # a department without a code of its own is charged here (none: refused)
    unallocated_cost_centre: str = "UNALLOCATED"  # spend with no department and nobody to share it with
    by: str = "department"  # or a declared allocation tag's key: a chargeback by project, by customer ...

    @property
    def rule(self) -> str:
        return "fixed shares" if self.shares else "proportional to usage"

    def code(self, department: str) -> str:
        """The department's cost centre, or the default one; empty when it has neither."""
        return dict(self.cost_centres).get(department, self.default_cost_centre)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cost_centres": dict(self.cost_centres)}
        out["unallocated"] = dict(self.shares) if self.shares else "proportional"
        out["accounts"] = {"expense": self.expense_account, "accrual": self.accrual_account}
        if self.default_cost_centre:
            out["default_cost_centre"] = self.default_cost_centre
        out["unallocated_cost_centre"] = self.unallocated_cost_centre
        if self.by != "department":
            out["by"] = self.by
        return out


def parse_chargeback(spec: Any, where: str) -> Chargeback:
    """``{cost_centres: {eng: CC-100}, unallocated: proportional | {eng: 60, sales: 40},
    accounts: {expense: "6420", accrual: "2100"}, default_cost_centre: CC-000,
    unallocated_cost_centre: CC-999}``."""
    if not isinstance(spec, Mapping):
        raise ChargebackError(where, "expected a mapping with cost_centres and unallocated")
    unknown = set(spec) - {
        "cost_centres",
        "unallocated",
        "accounts",
        "default_cost_centre",
        "unallocated_cost_centre",
        "by",
    }
    if unknown:
        raise ChargebackError(f"{where}.{sorted(unknown)[0]}", "unknown key")
    centres = spec.get("cost_centres", {})
    if not isinstance(centres, Mapping) or any(not isinstance(v, str) or not v for v in centres.values()):
        raise ChargebackError(f"{where}.cost_centres", "a mapping of department to its cost-centre code")
    if len(centres) > 1000:
        raise ChargebackError(f"{where}.cost_centres", "at most 1,000 departments")
    for department, code in centres.items():
        _check(department, code, f"{where}.cost_centres")
    shares = _shares(spec.get("unallocated", "proportional"), f"{where}.unallocated")
    accounts = spec.get("accounts", {})
    if not isinstance(accounts, Mapping) or set(accounts) - {"expense", "accrual"}:
        raise ChargebackError(f"{where}.accounts", "a mapping with expense and accrual account codes")
    if any(not isinstance(v, str) or not _CODE.fullmatch(v) for v in accounts.values()):
        raise ChargebackError(f"{where}.accounts", "account codes: letters, digits, ' ._/:-', at most 64")
    centres_of: dict[str, str] = {}
    for key, default in (("default_cost_centre", ""), ("unallocated_cost_centre", "UNALLOCATED")):
        value = spec.get(key, default)
        if (
            not isinstance(value, str)
            or (value and not _CODE.fullmatch(value))
            or (key == "unallocated_cost_centre" and not value)
        ):
            raise ChargebackError(f"{where}.{key}", "a cost-centre code: letters, digits, ' ._/:-', at most 64")
        centres_of[key] = value
    by = spec.get("by", "department")
    if not isinstance(by, str) or not (by == "department" or _TAG_KEY.fullmatch(by)):
        raise ChargebackError(f"{where}.by", "department, or the key of one of the org's allocation tags")
    return Chargeback(
        tuple(sorted((str(k), str(v)) for k, v in centres.items())),
        shares,
        accounts.get("expense", "6000"),
        accounts.get("accrual", "2000"),
        centres_of["default_cost_centre"],
        centres_of["unallocated_cost_centre"],
        by,
    )


def _shares(rule: Any, where: str) -> tuple[tuple[str, int], ...]:
    """Fixed shares of unallocated spend (percent per department), or none: proportional to usage."""
    if rule == "proportional":
        return ()
    if not isinstance(rule, Mapping):
        raise ChargebackError(where, "proportional, or a mapping of department to percent")
    if len(rule) > 1000 or any(not isinstance(k, str) or not _DEPARTMENT.fullmatch(k) for k in rule):
        raise ChargebackError(where, "department ids (at most 1,000) to percentages")
    if not rule or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in rule.values()):
        raise ChargebackError(where, "percentages: whole numbers of 0 or more per department")
    if sum(rule.values()) != 100:
        raise ChargebackError(where, f"the shares add up to {sum(rule.values())}, not 100")
    return tuple(sorted((str(k), int(v)) for k, v in rule.items()))


def _check(department: Any, code: str, where: str) -> None:
    if not isinstance(department, str) or not _DEPARTMENT.fullmatch(department):
        raise ChargebackError(where, f"{str(department)[:40]!r} is not a department id")
    if not _CODE.fullmatch(code):
        raise ChargebackError(f"{where}.{department}", "a cost-centre code: letters, digits, ' ._/:-', at most 64")


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
