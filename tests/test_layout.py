"""The layout's rules, checked on the source of every package: module size, one Faust module, one dedup key,
one retry loop, an operator CLI that does not load Faust, and one tree of input errors with their statuses."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
# the one list of the project's packages (import-linter's root packages); every other list is checked against it
PACKAGES: tuple[str, ...] = tuple(PROJECT["tool"]["importlinter"]["root_packages"])
MAX_LINES = 400


def modules(*roots: str) -> Iterator[Path]:
    for root in roots:
        yield from sorted((ROOT / root).rglob("*.py"))


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


LAYERS = "Layers, top down: the CLI, the programs, alerting and reports, the adapters, schemas"


def _contract(name: str) -> dict[str, Any]:
    contracts: list[dict[str, Any]] = PROJECT["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["name"] == name)


def test_every_list_of_packages_is_the_one_list() -> None:
    one = set(PACKAGES)
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"bench", "tests"}
    assert on_disk == one, f"top-level packages not in [tool.importlinter] root_packages: {on_disk ^ one}"
    tool = PROJECT["tool"]
    assert {p for p in tool["setuptools"]["packages"] if "." not in p} == one
    assert set(tool["mypy"]["packages"]) == one
    assert set(tool["deptry"]["known_first_party"]) == one | {"bench", "tests"}
    assert {p for p in tool["vulture"]["paths"] if not p.endswith(".py")} == one
    layered = {p.strip() for layer in _contract(LAYERS)["layers"] for p in layer.split("|")}
    assert layered == one, f"every package sits in exactly one layer: {layered ^ one}"


def test_every_package_says_what_it_owns() -> None:
    bare = [p for p in PACKAGES if not ast.get_docstring(tree(ROOT / p / "__init__.py"))]
    assert not bare, f"give these packages' __init__.py a docstring saying what the package owns: {bare}"


def test_no_two_modules_share_a_name_unless_they_play_one_role() -> None:
    shared_roles = {"__init__", "app", "metrics"}  # the same role in each package that has one
    seen: dict[str, list[str]] = {}
    for path in modules(*PACKAGES):
        seen.setdefault(path.stem, []).append(name(path))
    twice = {stem: paths for stem, paths in seen.items() if len(paths) > 1 and stem not in shared_roles}
    assert not twice, f"rename so that each name says what the module owns: {twice}"


def test_only_the_faust_app_may_import_faust_in_every_package() -> None:
    covered = set(_contract("Only the Faust app imports faust")["source_modules"])
    streams = {f"streams.{p.stem}" for p in (ROOT / "streams").glob("*.py") if p.stem not in {"__init__", "app"}}
    assert covered == (set(PACKAGES) - {"streams"}) | streams


def test_the_io_libraries_are_named_once() -> None:
    forbidding = [
        c["name"] for c in PROJECT["tool"]["importlinter"]["contracts"] if "redis" in c.get("forbidden_modules", ())
    ]
    assert forbidding == ["Pure modules import no I/O library"], "extend that contract's sources instead of copying"


def test_the_tests_mirror_the_source() -> None:
    """Each package's tests are in ``tests/<package>/``; ``tests/faults/`` is the fault-injection suite
    across packages, and the tests of the project as a whole sit at the top of ``tests/``."""
    folders = {p.parent.name for p in (ROOT / "tests").glob("*/__init__.py")}
    assert folders == set(PACKAGES) | {"faults"}, folders ^ (set(PACKAGES) | {"faults"})
    empty = [p for p in PACKAGES if not any((ROOT / "tests" / p).glob("test_*.py"))]
    assert not empty, f"packages without tests: {empty}"


def test_no_module_is_over_400_lines() -> None:
    long = {
        name(p): n for p in modules(*PACKAGES, "tests", "bench") if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these (over {MAX_LINES} lines): {long}"


def imports(module: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_faust_is_imported_by_exactly_one_module() -> None:
    importers = [name(p) for p in modules(*PACKAGES) if {"faust", "mode"} & imports(tree(p))]
    assert importers == ["streams/app.py"]


def test_only_the_alerts_schema_spells_a_dedup_key() -> None:
    spelled = []
    for path in modules(*PACKAGES):
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.keyword) and node.arg == "dedup_key":
                spelled.append(name(path))
            if isinstance(node, ast.FunctionDef) and node.name == "dedup_key" and name(path) != "schemas/alerts.py":
                spelled.append(name(path))
    assert not spelled, f"build alerts from schemas.alerts; their dedup_key is computed there: {spelled}"


def _sleeps(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute | ast.Name)
        and getattr(n.func, "attr", getattr(n.func, "id", "")) == "sleep"
        for n in ast.walk(node)
    )


def _returns_on_success(loop: ast.While | ast.For | ast.AsyncFor) -> bool:
    for node in ast.walk(loop):
        if isinstance(node, ast.Try) and any(
            isinstance(n, ast.Return | ast.Break) for b in node.body for n in ast.walk(b)
        ):
            return True
    return False


def test_no_retry_loop_outside_the_retry_policy() -> None:
    """A loop that tries, returns on success and sleeps after a failure is a retry loop: it belongs to
    retries.policy. (Waiting for a condition, or a periodic refresh, sleeps without returning from a try.)"""
    loops = []
    for path in modules(*PACKAGES):
        if name(path).startswith("retries/"):
            continue
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.While | ast.For | ast.AsyncFor) and _sleeps(node) and _returns_on_success(node):
                loops.append(f"{name(path)}:{node.lineno}")
    assert not loops, f"use retries.policy.Retry: {loops}"


def test_the_operator_cli_does_not_load_faust() -> None:
    """Reading config, listing budgets and measuring drift import the CLI and what those commands use,
    never the worker's Faust app."""
    probe = (
        "import sys, admin.cli, bus.config_topic, streams.drift, streams.rebuild, enforcement.redis_clients,"
        " schemas.budget_file;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'mode')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_every_input_error_is_in_the_tree_and_its_status_is_its_class():
    """The error tree in schemas/errors.py names every SpendstreamError subclass, and the HTTP services map
    an error to its status by ``exc.status`` alone, never by testing its class."""
    bases: dict[str, tuple[str, list[str]]] = {}  # class -> (module path, base names)
    for path in modules(*PACKAGES):
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.ClassDef):
                names = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
                bases[node.name] = (name(path).removesuffix(".py").replace("/", "."), names)

    def is_input_error(cls: str, seen: frozenset[str] = frozenset()) -> bool:
        if cls == "SpendstreamError":
            return True
        return cls in bases and cls not in seen and any(is_input_error(b, seen | {cls}) for b in bases[cls][1])

    errors = sorted(c for c in bases if c != "SpendstreamError" and is_input_error(c))
    doc = (ROOT / "schemas" / "errors.py").read_text().split('"""')[1]
    missing = [f"{bases[c][0]}.{c}" for c in errors if c not in doc]
    assert not missing, f"add these to the tree in schemas/errors.py: {missing}"
    mapped = [
        name(path)
        for path in modules("console", "enforcement", "integrations")
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance"
        and any(getattr(a, "id", "").endswith(("ForbiddenError", "ConflictError", "PreconditionError"))
                for a in ast.walk(node.args[1]))
    ]  # fmt: skip
    assert not mapped, f"map errors to statuses by exc.status: {mapped}"
