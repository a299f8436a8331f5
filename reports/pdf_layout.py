"""How a table fits the PDF's page (pure): the width of each column, the text size, and where a long name
may break, so that no cell runs into the next and nothing leaves the page, whatever the data.

Number columns never wrap: each gets the width of its widest figure. Text columns share what is left in
proportion to what they hold, none narrower than a short word; a name longer than its column gets break
opportunities (zero-width spaces) so that it wraps inside the column instead of running past it. When the
numbers alone do not fit at 9 pt, the table is set smaller, down to 6.5 pt.

Widths are measured from DejaVu Sans Bold's advance widths, rounded up per class of character, so an
estimate is never narrower than the text Typst sets; body cells, set in the regular face, are measured at
``REGULAR`` of that (its widest characters are within 8 % of the bold's)."""

from __future__ import annotations

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


def _longest_word(text: str, size: float) -> float:
    return max((text_width(word, size) for word in text.split()), default=0.0)


def breakable(text: str, width: float, size: float, bold: bool = True) -> str:
    """``text`` with a break opportunity inside every word too wide for ``width`` points at ``size``."""
    words = []
    for word in text.split(" "):
        if text_width(word, size, bold) <= width:
            words.append(word)
            continue
        pieces, piece = [], ""
        for ch in word:
            if piece and text_width(piece + ch, size, bold) > width:
                pieces.append(piece)
                piece = ""
            piece += ch
        words.append(_ZWSP.join([*pieces, piece]))
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class TableLayout:
    widths: tuple[float, ...]  # points
    size: float  # the table's text size, points


def _share(room: float, wants: list[float], floors: list[float]) -> list[float]:
    """``room`` split among columns wanting ``wants``: a column that wants less than its share gets what it
    wants, the others split the rest equally (water filling); none below its floor."""
    widths = [0.0] * len(wants)
    left = sorted(range(len(wants)), key=lambda i: wants[i])
    while left:
        fair = room / len(left)
        i = left[0]
        if wants[i] <= fair:
            widths[i] = wants[i]
            room -= wants[i]
            left.pop(0)
            continue
        for j in left:
            widths[j] = fair
        break
    return [max(w, f) for w, f in zip(widths, floors, strict=True)]


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
    widths: list[float] = []
    for size in _SIZES:
        cells = [
            [text_width(row[c], size, bold=False) for row in rows] + ([text_width(total[c], size)] if total else [])
            for c in columns
        ]
        heads = [_longest_word(header[c], size) for c in columns]
        natural = [max([heads[c], *cells[c]]) + _INSET for c in columns]
        floors = [natural[c] if numeric[c] else min(natural[c], max(_MIN_TEXT, heads[c] + _INSET)) for c in columns]
        fixed = sum(natural[c] for c in columns if numeric[c])
        text = [c for c in columns if not numeric[c]]
        if fixed + sum(floors[c] for c in text) <= page or size == _SIZES[-1]:
            break
    shares = _share(page - fixed, [natural[c] for c in text], [floors[c] for c in text])
    by_column = dict(zip(text, shares, strict=True))
    widths = [natural[c] if numeric[c] else by_column[c] for c in columns]
    return TableLayout(tuple(round(w, 2) for w in widths), size)
