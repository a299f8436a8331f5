"""How a table fits the PDF's page (pure): the width of each column, the text size, and where a long name
may break, so that no cell runs into the next and nothing leaves the page, whatever the data.

Number columns never wrap: each gets the width of its widest figure. Text columns share what is left in
proportion to what they hold, each at least as wide as its longest word when all of those fit (else none
narrower than a short word), so names wrap between words; a name longer than its column gets break
opportunities (zero-width spaces) so that it wraps inside the column instead of running past it. When the
numbers alone do not fit at 9 pt, the table is set smaller, down to 6.5 pt.

Widths are measured from DejaVu Sans Bold's advance widths, rounded up per class of character, so an
estimate is never narrower than the text Typst sets; body cells, set in the regular face, are measured at
``REGULAR`` of that (its widest characters are within 8 % of the bold's)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TEXT_WIDTH_PT", "TableLayout", "breakable", "layout_table", "text_width"]

TEXT_WIDTH_PT = 493.0  # A4 (595.3 pt) less the template's 1.8 cm margins
_INSET = 9.0  # the template's 4 pt either side, and a point to spare
_MIN_TEXT = 48.0  # no text column narrower than this
_SIZES = (9.0, 8.0, 7.0, 6.5)
_ZWSP = "\u200b"
REGULAR = 0.93  # the regular face against the bold, upper bound

# advance widths in thousandths of an em, DejaVu Sans Bold rounded up (digits share one width)
_NARROW = dict.fromkeys("ijlI.,:;'!|", 380) | dict.fromkeys('ftr()[]{}-/\\" ', 500)
_WIDE = dict.fromkeys("mwMW%@&", 1100)


def _advance(ch: str) -> int:
    if ch in _NARROW:
        return _NARROW[ch]
    if ch in _WIDE:
        return _WIDE[ch]
    if ch.isdigit() or ch in "$+=<>~#*_^?":
        return 720
    if ch.islower():
        return 720
    if ch.isupper():
        return 860
    return 1000 if ord(ch) < 0x2E80 else 1100  # anything else, and wide East Asian characters


def text_width(text: str, size: float, bold: bool = True) -> float:
    """An upper bound of the width of ``text`` at ``size`` points, in the bold face or the regular one."""
    return sum(_advance(ch) for ch in text if ch != _ZWSP) * size / 1000 * (1.0 if bold else REGULAR)


_AFTER = re.compile(r"(?<=[-/_])")  # a name may break after a hyphen, a slash or an underscore


def _longest_word(text: str, size: float) -> float:
    """The widest piece of ``text`` that cannot break: a word, or the part of one up to a hyphen."""
    return max((text_width(piece, size) for word in text.split() for piece in _AFTER.split(word)), default=0.0)


def breakable(text: str, width: float, size: float, bold: bool = True) -> str:
    """``text`` with a break opportunity inside every word too wide for ``width`` points at ``size``: after
    its hyphens (slashes, underscores) where that is enough, else between characters."""
    words = []
    for word in text.split(" "):
        if text_width(word, size, bold) <= width:
            words.append(word)
            continue
        lines, line = [], ""
        for piece in (p for part in _AFTER.split(word) for p in _split(part, width, size, bold)):
            if line and text_width(line + piece, size, bold) > width:
                lines.append(line)
                line = ""
            line += piece
        words.append(_ZWSP.join([*lines, line]))
    return " ".join(words)


def _split(piece: str, width: float, size: float, bold: bool) -> list[str]:
    """``piece`` cut between characters into parts no wider than ``width`` (itself when it fits)."""
    parts, part = [], ""
    for ch in piece:
        if part and text_width(part + ch, size, bold) > width:
            parts.append(part)
            part = ""
        part += ch
    return [*parts, part]


@dataclass(frozen=True, slots=True)
class TableLayout:
    widths: tuple[float, ...]  # points
    size: float  # the table's text size, points


def _share(room: float, wants: list[float], floors: list[float]) -> list[float]:
    """``room`` split among columns wanting ``wants``: each gets its floor first, then the rest is shared
    by water filling: a column that wants less than its share of it gets what it wants, the others split
    what is left equally."""
    widths = list(floors)
    extra = room - sum(floors)
    left = sorted((i for i in range(len(wants)) if wants[i] > floors[i]), key=lambda i: wants[i] - floors[i])
    while left and extra > 0:
        fair = extra / len(left)
        i = left[0]
        if wants[i] - floors[i] <= fair:
            extra -= wants[i] - floors[i]
            widths[i] = wants[i]
            left.pop(0)
            continue
        for j in left:
            widths[j] = floors[j] + fair
        break
    return widths


def _needs(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: Sequence[bool],
    total: Sequence[str] | None,
    size: float,
    whole_words: bool,
) -> tuple[list[float], list[float]]:
    """Each column's natural width (its widest cell, unbroken) and the least it may have at ``size``: a
    number column its natural width; a text column its longest word (``whole_words``) or a short word."""
    natural, floors = [], []
    for c in range(len(header)):
        cells = [text_width(row[c], size, bold=False) for row in rows] + ([text_width(total[c], size)] if total else [])
        head = _longest_word(header[c], size)
        natural.append(max([head, *cells]) + _INSET)
        if numeric[c]:
            floors.append(natural[-1])
            continue
        least = max(_MIN_TEXT, head + _INSET)
        if whole_words:
            least = max(least, max((_longest_word(row[c], size) * REGULAR for row in rows), default=0.0) + _INSET)
        floors.append(min(natural[-1], least))
    return natural, floors


def layout_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: Sequence[bool],
    total: Sequence[str] | None = None,
    page: float = TEXT_WIDTH_PT,
) -> TableLayout:
    """Column widths and text size for a table of ``header`` and ``rows`` (each cell as it is printed, in the
    regular face) and its ``total`` row (bold, like the header)."""
    columns = range(len(header))
    text = [c for c in columns if not numeric[c]]
    # first the largest size at which every text column is as wide as its longest word (names wrap between
    # words only); failing that, the largest at which each is as wide as a short word
    for whole_words in (True, False):
        for size in _SIZES:
            natural, floors = _needs(header, rows, numeric, total, size, whole_words)
            fixed = sum(natural[c] for c in columns if numeric[c])
            if fixed + sum(floors[c] for c in text) <= page:
                break
        else:
            continue
        break
    shares = _share(page - fixed, [natural[c] for c in text], [floors[c] for c in text])
    by_column = dict(zip(text, shares, strict=True))
    widths = [natural[c] if numeric[c] else by_column[c] for c in columns]
    return TableLayout(tuple(round(w, 2) for w in widths), size)
