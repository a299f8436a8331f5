"""XLSX with XlsxWriter: a summary sheet, then a sheet per table, with typed cells, currency formats,
frozen header rows, an autofilter, a totals row written as formulas (with their values cached, so
readers that do not calculate see them), and a native Excel bar chart of each table's costliest rows.

Money is written twice: as USD in a currency format, and as integer nano-USD in the column beside it,
the exact figure (a double holds every nano-USD only below about 9 million USD)."""

from __future__ import annotations

import io
import re
from typing import Any

import xlsxwriter
from xlsxwriter.utility import xl_rowcol_to_cell

from reports.model import Cell, Column, Kind, Report, Table
from reports.render_csv import safe_cell
from schemas.money import to_usd, usd_exact

__all__ = ["render_xlsx"]

_SHEET = re.compile(r"[\[\]:*?/\\]")
_NUMBER_FORMATS = {
    Kind.USD: "$#,##0.00",
    Kind.UNIT_USD: "$#,##0.000000",
    Kind.INT: "#,##0",
    Kind.PCT: "0.0%",
    Kind.FLOAT: "#,##0.000",
    Kind.DATE: "yyyy-mm-dd",
    Kind.TEXT: "@",
}
_TOP = 3  # the header row of a table sheet


def render_xlsx(report: Report) -> bytes:
    out = io.BytesIO()
    _Book(out, report).write()
    return out.getvalue()


def _layout(columns: tuple[Column, ...]) -> list[tuple[Column, bool]]:
    """Each sheet column: (its report column, whether it is the nano-USD twin of a money column)."""
    out: list[tuple[Column, bool]] = []
    for column in columns:
        out.append((column, False))
        if column.kind is Kind.USD:
            out.append((column, True))
    return out


class _Book:
    def __init__(self, out: io.BytesIO, report: Report) -> None:
        self.report = report
        self.book: Any = xlsxwriter.Workbook(
            out, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
        )
        self.book.set_properties({"title": report.title, "subject": report.scope})
        self.bold = self.book.add_format({"bold": True})
        self.head = self.book.add_format({"bold": True, "bg_color": "#DBEAFE", "border": 1, "text_wrap": True})
        self.cell = {k: self.book.add_format({"num_format": f}) for k, f in _NUMBER_FORMATS.items()}
        self.total = {
            k: self.book.add_format({"num_format": f, "bold": True, "top": 1}) for k, f in _NUMBER_FORMATS.items()
        }
        self.nano = self.book.add_format({"num_format": "0"})
        self.nano_total = self.book.add_format({"num_format": "0", "bold": True, "top": 1})
        self.names: set[str] = {"summary"}

    def write(self) -> None:
        self._summary()
        for table in self.report.tables:
            self._table(table)
        self.book.close()

    def _summary(self) -> None:
        report, sheet = self.report, self.book.add_worksheet("Summary")
        sheet.set_column(0, 0, 34)
        sheet.set_column(1, 2, 24)
        sheet.write(0, 0, report.title, self.book.add_format({"bold": True, "font_size": 16}))
        sheet.write(1, 0, report.scope, self.bold)
        sheet.write(2, 0, f"{report.first} to {report.last}; generated {report.generated_at:%Y-%m-%d %H:%M} UTC")
        for row, figure in enumerate(report.figures, start=4):
            sheet.write(row, 0, figure.label, self.bold)
            self._cell(sheet, row, 1, figure.kind, figure.value)
            if figure.kind is Kind.USD and figure.value is not None:
                sheet.write_string(row, 2, f"{usd_exact(int(figure.value))} USD")  # type: ignore[arg-type]
            if figure.detail:
                sheet.write(row, 3, figure.detail)

    def _table(self, table: Table) -> None:
        sheet = self.book.add_worksheet(self._sheet_name(table))
        layout = _layout(table.columns)
        sheet.write(0, 0, table.title, self.bold)
        sheet.write(1, 0, self.report.scope)  # a sheet copied out of the workbook still says what it covers
        if table.note:
            sheet.write(2, 0, table.note)
        for c, (column, twin) in enumerate(layout):
            sheet.write(_TOP, c, f"{column.label} (nano-USD)" if twin else column.label, self.head)
            sheet.set_column(c, c, 24 if column.kind is Kind.TEXT else 15)
        for r, values in enumerate(table.rows, start=_TOP + 1):
            c = 0
            for column, value in zip(table.columns, values, strict=True):
                self._cell(sheet, r, c, column.kind, column.missing if value is None and column.missing else value)
                if column.kind is Kind.USD:
                    if value is not None:
                        sheet.write_number(r, c + 1, int(value), self.nano)  # type: ignore[arg-type]
                    c += 1
                c += 1
        last = _TOP + len(table.rows)
        sheet.freeze_panes(_TOP + 1, 0)
        sheet.autofilter(_TOP, 0, last, len(layout) - 1)
        if table.totalled and table.rows:
            self._totals(sheet, table, last)
        self._chart(sheet, table, layout, last)

    def _totals(self, sheet: Any, table: Table, last: int) -> None:
        """SUBTOTAL(109, ...) sums what the autofilter shows; the cached value is the exact total."""
        row = last + 1
        sheet.write(row, 0, table.total_label, self.total[Kind.TEXT])
        c = 0
        for column, value in zip(table.columns, table.totals(), strict=True):
            twins = 2 if column.kind is Kind.USD else 1
            for k in range(twins if column.total else 0):
                cells = f"{xl_rowcol_to_cell(_TOP + 1, c + k)}:{xl_rowcol_to_cell(last, c + k)}"
                if k == 1:  # the nano-USD twin: exact
                    sheet.write_formula(row, c + k, f"=SUBTOTAL(109,{cells})", self.nano_total, int(value))  # type: ignore[arg-type]
                else:
                    cached = float(to_usd(int(value))) if column.kind is Kind.USD else value  # type: ignore[arg-type]
                    sheet.write_formula(row, c + k, f"=SUBTOTAL(109,{cells})", self.total[column.kind], cached)
            c += twins

    def _chart(self, sheet: Any, table: Table, layout: list[tuple[Column, bool]], last: int) -> None:
        """A bar chart of the first money column against the first column, for its first 15 rows."""
        money = next((i for i, (c, twin) in enumerate(layout) if c.kind is Kind.USD and not twin), None)
        if money is None or not table.rows or money == 0:
            return
        rows = min(last, _TOP + 15)
        name = sheet.get_name()
        chart = self.book.add_chart({"type": "bar"})
        chart.add_series(
            {
                "name": layout[money][0].label,
                "categories": [name, _TOP + 1, 0, rows, 0],
                "values": [name, _TOP + 1, money, rows, money],
                "fill": {"color": "#2563EB"},
            }
        )
        chart.set_title({"name": table.title})
        chart.set_legend({"none": True})
        chart.set_y_axis({"reverse": True})
        sheet.insert_chart(_TOP, len(layout) + 1, chart, {"x_scale": 1.3, "y_scale": 1.2})

    def _cell(self, sheet: Any, row: int, col: int, kind: Kind, value: Cell) -> None:
        if value is None:
            sheet.write_blank(row, col, None)
        elif kind in (Kind.USD, Kind.UNIT_USD):
            sheet.write_number(row, col, float(to_usd(int(value))), self.cell[kind])  # type: ignore[arg-type]
        elif kind in (Kind.INT, Kind.FLOAT, Kind.PCT) and isinstance(value, int | float):
            sheet.write_number(row, col, value, self.cell[kind])
        elif kind is Kind.DATE and not isinstance(value, str):
            sheet.write_datetime(row, col, value, self.cell[kind])
        else:
            sheet.write_string(row, col, str(safe_cell(value)))

    def _sheet_name(self, table: Table) -> str:
        title = _SHEET.sub(" ", table.title).strip()
        if len(title) > 31:  # Excel's limit: cut at a word, not inside one
            title = title[:32].rsplit(" ", 1)[0] if " " in title[:32] else title[:31]
        base = title or table.name[:31]
        name, n = base, 2
        while name.lower() in self.names:
            name = f"{base[:28]} {n}"
            n += 1
        self.names.add(name.lower())
        return name
