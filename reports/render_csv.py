"""CSV (pure): RFC 4180 (CRLF, quoted as needed), UTF-8 with an optional BOM for Excel, money as exact
decimal USD and as integer nano-USD, and text cells that a spreadsheet would run as a formula
(starting with ``=``, ``+``, ``-``, ``@``, tab or CR) quoted with a leading apostrophe."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any

from reports.model import Cell, Column, Kind, Table
from schemas.money import usd_exact

__all__ = ["csv_lines", "safe_cell", "table_csv"]

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def _header(columns: Sequence[Column]) -> list[str]:
    names: list[str] = []
    for column in columns:
        money = column.kind in (Kind.USD, Kind.UNIT_USD)
        names += [f"{column.name}_usd", f"{column.name}_nanos"] if money else [column.name]
    return names


def _values(columns: Sequence[Column], row: Sequence[Cell]) -> list[Any]:
    out: list[Any] = []
    for column, value in zip(columns, row, strict=True):
        if column.kind in (Kind.USD, Kind.UNIT_USD):
            out += ["", ""] if value is None else [usd_exact(int(value)), int(value)]  # type: ignore[arg-type]
        elif isinstance(value, date):
            out.append(value.isoformat())
        else:
            out.append(safe_cell(value))
    return out


def csv_lines(columns: Sequence[Column], rows: Iterable[Sequence[Cell]], bom: bool = False) -> Iterator[str]:
    """The file as lines, header first: for streaming a large export without holding it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(_header(columns))
    yield ("\ufeff" if bom else "") + buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(_values(columns, row))
        yield buffer.getvalue()


def table_csv(table: Table, bom: bool = False) -> str:
    return "".join(csv_lines(table.columns, table.rows, bom))
