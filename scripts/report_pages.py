"""A page of each report kind as PNG, for the docs (docs/report-<kind>-page.png), from the local stack.

    .venv/bin/python scripts/report_pages.py [ORG] [YYYY-MM]

Generates each kind's PDF for ORG's month (acme and last month unless given; the custom report: the
month, by feature, per week) with `spendstream reports generate`, and turns its second page, the
first with figures, into PNG with pdftoppm at 80 dpi."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from calendar import monthrange
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemas.report_kinds import KINDS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def main() -> None:
    org = sys.argv[1] if len(sys.argv) > 1 else "acme"
    month = sys.argv[2] if len(sys.argv) > 2 else f"{date.today().replace(day=1) - timedelta(days=1):%Y-%m}"
    first = date.fromisoformat(f"{month}-01")
    last = first.replace(day=monthrange(first.year, first.month)[1])
    with tempfile.TemporaryDirectory() as folder:
        for kind in KINDS:
            out = Path(folder) / kind
            period = (
                ["--from", f"{first}", "--to", f"{last}", "--group", "feature", "--granularity", "week"]
                if kind == "custom"
                else ["--month", month]
            )
            subprocess.run(
                [sys.executable, "-m", "admin.cli", "reports", "generate", "--org", org, "--kind", kind, *period,
                 "--format", "pdf", "--out", str(out)],
                check=True, cwd=ROOT,
            )  # fmt: skip
            (pdf,) = out.glob("*.pdf")
            target = DOCS / f"report-{kind}-page"
            subprocess.run(
                ["pdftoppm", "-f", "2", "-l", "2", "-r", "80", "-png", "-singlefile", str(pdf), str(target)],
                check=True, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            print(f"wrote {target}.png")  # noqa: T201 - a command-line tool


if __name__ == "__main__":
    main()
