"""Department chargeback for a month (pure): each department's own spend, its cost-centre code, and its
part of the spend no department owns, shared by the org's rule and shown; the charges add up to the
month's spend exactly. Spend that cannot be shared (no department had any, and there are no fixed shares)
is charged on a row of its own, to the org's unallocated cost centre."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from reports.model import Column, Figure, Kind, Report, Section, Table
from schemas.cost_allocation import Chargeback, allocate

__all__ = ["NO_CENTRE", "UNOWNED", "UNSHARED", "ChargebackData", "chargeback_report"]

UNOWNED = ""  # the department of spend that names none
NO_CENTRE = "(no cost centre)"  # shown for a department with no code and no default; the journal refuses it
UNSHARED = "(no department)"  # the row of spend with no department that nothing could be shared to


@dataclass(slots=True)
class ChargebackData:
    org_id: str
    month: date
    last: date
    timezone: str
    generated_at: datetime
    rule: Chargeback
    spend: dict[str, tuple[int, int]] = field(default_factory=dict)  # department -> (requests, cost nano-USD)

    @property
    def owner(self) -> str:
        """What is charged: "department", or the tag the org charges by ("project")."""
        return self.rule.by


def _unshared(owner: str) -> str:
    return UNSHARED if owner == "department" else f"(no {owner})"


def chargeback_report(data: ChargebackData) -> Report:
    owned = {d: cost for d, (_, cost) in data.spend.items() if d != UNOWNED}
    unowned = data.spend.get(UNOWNED, (0, 0))[1]
    owner = data.owner
    if data.rule.shares:
        weights = dict(data.rule.shares)
        basis = "the org's fixed shares"
    else:
        weights = owned
        basis = f"each {owner}'s own spend this month"
    shared = allocate(unowned, weights)
    unshared = unowned - sum(shared.values())  # all of it when there is nothing to share it by
    departments = sorted(set(owned) | {d for d, v in shared.items() if v})
    rows = []
    for department in departments:
        own, part = owned.get(department, 0), shared.get(department, 0)
        requests = data.spend.get(department, (0, 0))[0]
        rows.append((department, data.rule.code(department) or NO_CENTRE, requests, own, part, own + part))
    if unshared:
        requests = data.spend.get(UNOWNED, (0, 0))[0]
        rows.append((_unshared(owner), data.rule.unallocated_cost_centre, requests, unshared, 0, unshared))
        basis = f"nothing: no {owner} had spend, so it is charged to {data.rule.unallocated_cost_centre}"
    columns = (
        Column("department", owner.capitalize()),
        Column("cost_centre", "Cost centre"),
        Column("requests", "Requests", Kind.INT, total=True),
        Column("direct", "Direct spend", Kind.USD, total=True),
        Column("allocated", "Allocated", Kind.USD, total=True),
        Column("charged", "Charged", Kind.USD, total=True),
    )
    weight_total = sum(weights.values())
    allocation = [
        (d, weights[d] / weight_total if weight_total else 0.0, shared.get(d, 0)) for d in sorted(weights) if weights[d]
    ]
    allocation_table = Table(
        "allocation",
        "How the unallocated spend was shared",
        (
            Column("department", owner.capitalize()),
            Column("weight", "Share", Kind.PCT),
            Column("amount", "Allocated", Kind.USD, total=True),
        ),
        allocation,
        f"Spend with no {owner}: shared by {basis} ({data.rule.rule})"
        + ("." if unshared else "; every nano-USD is allocated."),
    )
    total = sum(owned.values()) + unowned
    return Report(
        "chargeback",
        f"{owner.capitalize()} chargeback",
        data.org_id,
        data.month,
        data.last,
        data.timezone,
        data.generated_at,
        (
            Figure("Charged this month", total),
            Figure(f"Spend with no {owner}", unowned, Kind.USD, f"shared {data.rule.rule}"),
        ),
        (
            Section(
                "Charges",
                text=f"What each {owner} is charged: its own spend and its share of the rest.",
                tables=(Table("charges", f"Charges by {owner}", columns, rows),),
            ),
            Section("Allocation", tables=(allocation_table,)),
        ),
    )
