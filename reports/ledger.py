"""A general-ledger journal of the month's chargeback (pure): one debit line per department (or tag value,
when the org charges by a tag) to the
expense account, under its cost centre, and one credit line of the total to the accrual account; in
cents, as accounting systems import them, rounded so that the lines still balance and add up to the
month's spend rounded once (the nano-USD that rounding moves go to the largest remainders). A charge with no
cost centre to post it under (no code of its own and no default) refuses the journal, naming the
department: a line under a made-up centre would be posted nowhere an accountant can find."""

from __future__ import annotations

from reports.chargeback import NO_CENTRE, ChargebackData, chargeback_report
from reports.model import Cell, Column, Figure, Kind, Report, Section, Table
from schemas.cost_allocation import allocate
from schemas.report_kinds import ReportError

__all__ = ["ledger_report"]


def _cents(nanos: int) -> int:
    """Half to even, to the cent."""
    cents, rest = divmod(nanos, 10**7)
    if rest > 5 * 10**6 or (rest == 5 * 10**6 and cents % 2):
        cents += 1
    return cents


def ledger_report(data: ChargebackData) -> Report:
    charges = chargeback_report(data).tables[0]
    charged = {str(row[0]): int(row[5]) for row in charges.rows}  # type: ignore[arg-type]
    centres = {str(row[0]): str(row[1]) for row in charges.rows}
    for department, centre in centres.items():
        if centre == NO_CENTRE and charged[department]:
            raise ReportError(
                "chargeback.cost_centres",
                f"{data.owner} {department!r} has no cost centre, and the org sets no default_cost_centre",
            )
    total = sum(charged.values())
    total_cents = _cents(total)
    # the rounded total shared by each department's exact charge: the debits add up to the credit
    debits = allocate(total_cents, charged) if total else {}
    period = f"{data.month:%Y-%m}"
    reference = f"spendstream-{data.org_id}-{period}"
    rule = data.rule
    memo = f"AI usage {period}" + ("" if data.owner == "department" else f" by {data.owner}")
    lines: list[tuple[Cell, ...]] = [
        (data.last, reference, rule.expense_account, centres[d], debits[d] * 10**7, None, "USD", f"{memo}: {d}")
        for d in sorted(debits)
        if debits[d]
    ]
    credit = total_cents * 10**7
    lines.append((data.last, reference, rule.accrual_account, "", None, credit, "USD", f"{memo}: accrued"))
    columns = (
        Column("journal_date", "Date", Kind.DATE),
        Column("reference", "Reference"),
        Column("account", "Account"),
        Column("cost_centre", "Cost centre"),
        Column("debit", "Debit", Kind.USD, total=True),
        Column("credit", "Credit", Kind.USD, total=True),
        Column("currency", "Currency"),
        Column("memo", "Memo"),
    )
    return Report(
        "ledger",
        "General-ledger journal",
        data.org_id,
        data.month,
        data.last,
        data.timezone,
        data.generated_at,
        (Figure("Journal total", total_cents * 10**7, Kind.USD, f"the month's spend, {total} nano-USD, to the cent"),),
        (
            Section(
                "Journal",
                text=f"Debits to {rule.expense_account} by cost centre, one credit to {rule.accrual_account}.",
                tables=(Table("journal", "Journal lines", columns, lines),),
            ),
        ),
    )
