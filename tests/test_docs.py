"""The docs a newcomer reads stay true to the tree: the README is short and leads to the docs, and every
file, folder and module the README and docs/ name exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from tests.test_layout import PACKAGES

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a file (with its extension) or a folder (with its slash), not an API path such as `reports/runs`
_TOPS = "|".join(PACKAGES)
_PATH = re.compile(rf"`((?:{_TOPS}|bench|tests|scripts|examples|docs)/(?:[\w./-]*\.\w+|[\w./-]*/))`")
_MODULE = re.compile(rf"`((?:{_TOPS})(?:\.[a-z_0-9]+)+)")
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_short_and_links_every_doc() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for doc in ("architecture", "operations", "benchmarks", "api", "security"):
        assert f"(docs/{doc}.md)" in readme


def test_every_path_and_link_in_the_docs_exists() -> None:
    missing = []
    for doc in DOCS:
        text = doc.read_text()
        for found in _PATH.findall(text):
            if "<" not in found and "*" not in found and not (ROOT / found.rstrip("/")).exists():
                missing.append(f"{doc.name}: {found}")
        for link in _LINK.findall(text):
            if not link.startswith(("http://", "https://", "mailto:")) and not (doc.parent / link).exists():
                missing.append(f"{doc.name}: link {link}")
    assert not missing, missing


def _resolves(dotted: str) -> bool:
    """A module, or an attribute of one (``schemas.errors.SpendstreamError``), in the tree."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.util.find_spec(".".join(parts[:cut]))
        except ModuleNotFoundError:  # a name inside a module, not a submodule
            found = None
        if found is not None:
            target: object = importlib.import_module(".".join(parts[:cut]))
            for name in parts[cut:]:
                if not hasattr(target, name):
                    return False
                target = getattr(target, name)
            return True
    return False


def test_every_module_the_docs_name_exists() -> None:
    files = {"db", "py", "yaml", "yml", "json", "html", "md", "png", "toml", "csv", "pdf", "xlsx"}
    named = {(doc.name, m) for doc in DOCS for m in _MODULE.findall(doc.read_text()) if m.rsplit(".")[-1] not in files}
    missing = sorted(f"{doc}: {m}" for doc, m in named if not _resolves(m))
    assert not missing, missing
