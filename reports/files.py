"""A report's files: PDF, XLSX and CSV (one file per table), rendered in memory, written to a folder whole
or not at all (a temporary file renamed into place), or packed as one download (the CSVs as a zip)."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from reports.model import Report
from reports.render_csv import table_csv
from reports.render_pdf import render_pdf
from reports.render_xlsx import render_xlsx
from schemas.report_kinds import Format, ReportError

__all__ = ["Format", "ReportError", "about", "download", "media_type", "parse_formats", "render_files", "write_report"]

_MEDIA = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
    "zip": "application/zip",
}


def media_type(name: str) -> str:
    """The media type of a report file by its name's suffix."""
    return _MEDIA.get(name.rsplit(".", 1)[-1], "application/octet-stream")


def parse_formats(values: Sequence[str]) -> list[Format]:
    formats = []
    for value in values:
        for part in value.split(","):
            try:
                formats.append(Format(part.strip().lower()))
            except ValueError:
                raise ReportError("format", f"{part.strip()!r}: one of pdf, xlsx, csv") from None
    return list(dict.fromkeys(formats)) or [Format.PDF]


def _write(target: Path, content: bytes) -> Path:
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def about(report: Report, names: Sequence[str]) -> str:
    """The side file of a report's CSVs (``<slug>-about.txt``): what they cover, since a CSV has no place
    for it that every reader accepts. Money columns come in pairs: ``*_usd`` (exact decimal) and ``*_nanos``."""
    lines = [
        f"{report.title}",
        f"Covers: {report.scope}",
        f"From {report.first} to {report.last}, both included; generated {report.generated_at:%Y-%m-%d %H:%M} UTC.",
        "Money: *_usd is the exact decimal USD, *_nanos the same amount in integer nano-USD (1e-9 USD).",
        "Files:",
        *(f"  {name}" for name in names),
    ]
    return "\n".join(lines) + "\n"


def render_files(report: Report, formats: Sequence[Format], bom: bool = False) -> list[tuple[str, bytes]]:
    """Each file of ``report`` (its name and its bytes): a PDF, an XLSX, one CSV per table with the side file
    that says what they cover."""
    rendered: list[tuple[str, bytes]] = []
    for fmt in formats:
        if fmt is Format.PDF:
            rendered.append((f"{report.slug}.pdf", render_pdf(report)))
        elif fmt is Format.XLSX:
            rendered.append((f"{report.slug}.xlsx", render_xlsx(report)))
        else:
            csvs = [(f"{report.slug}-{table.name}.csv", table_csv(table, bom).encode()) for table in report.tables]
            rendered += [*csvs, (f"{report.slug}-about.txt", about(report, [n for n, _ in csvs]).encode())]
    return rendered


def write_report(
    report: Report, formats: Sequence[Format], folder: Path, bom: bool = False, progress: Callable[[str], None] = print
) -> list[Path]:
    """The files of ``report`` in ``folder``; every render happens before the first file is written."""
    folder.mkdir(parents=True, exist_ok=True)
    rendered = render_files(report, formats, bom)
    paths = []
    for name, content in rendered:
        paths.append(_write(folder / name, content))
        progress(f"wrote {folder / name} ({len(content):,} bytes)")
    return paths


def download(report: Report, fmt: Format, bom: bool = False) -> tuple[str, str, bytes]:
    """``report`` as one file to download: its name, media type and bytes (CSV: a zip of one file per table)."""
    files = render_files(report, [fmt], bom)
    if fmt is not Format.CSV:
        name, content = files[0]
        return name, media_type(name), content
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files:
            archive.writestr(name, content)
    return f"{report.slug}-csv.zip", _MEDIA["zip"], buffer.getvalue()
