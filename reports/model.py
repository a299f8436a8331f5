"""What a report is, whatever it is rendered to (pure): a title, figures, and sections of tables and
charts. Money is integer nano-USD here; each renderer formats it (exactly, where the format allows)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from schemas.money import format_unit_usd, format_usd

__all__ = ["Cell", "Chart", "Column", "Figure", "Kind", "Report", "Section", "Table", "display"]

Cell = str | int | float | date | None


class Kind(StrEnum):
    TEXT = "text"
    INT = "int"
    USD = "usd"  # integer nano-USD
    UNIT_USD = (
        "unit_usd"  # a unit cost in integer nano-USD (per request, per 1k tokens): shown to 3 figures, not summed
    )
    PCT = "pct"  # a fraction: 0.25 is 25 %
    FLOAT = "float"
    DATE = "date"


_DISPLAY = {
    Kind.USD: lambda v: format_usd(int(v)),
    Kind.UNIT_USD: lambda v: format_unit_usd(int(v)),
    Kind.INT: lambda v: f"{int(v):,}",
    Kind.PCT: lambda v: f"{float(v) * 100:.1f}%",
    Kind.FLOAT: lambda v: f"{float(v):,.3f}",
}


def display(kind: Kind, value: Cell) -> str:
    """A value as a reader sees it on a page or in an email: money to the cent (unit costs to 3 figures)."""
    if value is None:
        return ""
    if kind in _DISPLAY and not isinstance(value, str):
        return str(_DISPLAY[kind](value))
    return value.isoformat() if isinstance(value, date) else str(value)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    label: str
    kind: Kind = Kind.TEXT
    total: bool = False  # summed in the table's totals row
    missing: str = ""  # what the PDF and the XLSX show for a value that is not there (CSV: an empty field)


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # also the sheet name in a workbook and the file name of its CSV
    title: str
    columns: tuple[Column, ...]
    rows: Sequence[Sequence[Cell]]
    note: str = ""
    total_label: str = "Total"  # the totals row's label: say "of these" when the rows are not all there is

    @property
    def totalled(self) -> bool:
        return any(c.total for c in self.columns)

    def totals(self) -> list[Cell]:
        """The totals row: sums of the totalled columns (exact integers for money), blanks elsewhere."""
        out: list[Cell] = []
        for i, column in enumerate(self.columns):
            if column.total:
                out.append(sum(row[i] or 0 for row in self.rows))  # type: ignore[misc]
            else:
                out.append(self.total_label if i == 0 else None)
        return out


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    spec: dict[str, Any]  # Vega-Lite, from reports.charts


@dataclass(frozen=True, slots=True)
class Figure:
    """A headline number: ``value`` in the column kind's unit."""

    label: str
    value: Cell
    kind: Kind = Kind.USD
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    text: str = ""
    figures: tuple[Figure, ...] = ()
    tables: tuple[Table, ...] = ()
    charts: tuple[Chart, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    kind: str  # monthly, custom, chargeback ...
    title: str
    org_id: str
    first: date
    last: date  # included
    timezone: str
    generated_at: datetime
    figures: tuple[Figure, ...] = ()
    sections: tuple[Section, ...] = field(default_factory=tuple)
    filters: tuple[tuple[str, str], ...] = ()  # what narrows it (model gpt-4o, ...); how it is grouped and cut

    @property
    def period(self) -> str:
        """The period as a reader names it: "November 2026", or "2026-11-03 to 2026-11-09"."""
        if self.whole_month:
            return f"{self.first:%B %Y}"
        return self.first.isoformat() if self.first == self.last else f"{self.first} to {self.last}"

    @property
    def filtered(self) -> str:
        """Which usage the figures cover: "Filtered to model gpt-4o; by model, per day", or all of it."""
        narrowing = ", ".join(f"{name} {value}" for name, value in self.filters if name not in ("group", "granularity"))
        said = f"Filtered to {narrowing}" if narrowing else "All usage of the org"
        cut = dict(self.filters)
        if "group" in cut:
            said += f"; by {cut['group']}, per {cut.get('granularity', 'day')}"
        return said

    @property
    def scope(self) -> str:
        """What the figures cover, said on every file: the org, the period, its time zone and any filter."""
        return f"{self.org_id}, {self.period} (times in {self.timezone}). {self.filtered}."

    @property
    def tables(self) -> list[Table]:
        return [table for section in self.sections for table in section.tables]

    @property
    def whole_month(self) -> bool:
        return self.first.day == 1 and (self.last + timedelta(days=1)).day == 1 and self.first.month == self.last.month

    @property
    def slug(self) -> str:
        """The files' common name; with filters, a short digest of them, so that two reports of one period
        with different filters do not overwrite each other."""
        if self.whole_month:
            period = f"{self.first:%Y-%m}"
        else:
            period = self.first.isoformat() if self.first == self.last else f"{self.first}_{self.last}"
        digest = ""
        if self.filters:
            digest = "-" + hashlib.blake2b(repr(sorted(self.filters)).encode(), digest_size=3).hexdigest()
        return f"spendstream-{self.org_id}-{self.kind}-{period}{digest}"
