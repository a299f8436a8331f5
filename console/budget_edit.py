"""Budget Settings' rules (pure): a budget from what the form or the API sent, who may save it, and the
version a concurrent edit is detected by.

Input takes the budgets file's shape (``scope``, ``id``, ``period``, ``limit`` in USD, ``mode``,
``stages``, ``alerts``) and goes through the same parser as ``budgets apply``; the org is always the
signed-in principal's, never the request's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from console.roles import Principal, Right
from schemas.budget_file import BudgetFileError, parse_budget_spec
from schemas.budgets import Budget, BudgetMode, OrgConfig, Period, ScopeKind
from schemas.config_records import budget_record
from schemas.errors import ForbiddenError
from schemas.money import format_usd, to_usd

__all__ = [
    "REPLACED_FIELDS",
    "budget_from_input",
    "budget_view",
    "check_may_save",
    "missing_for_replace",
    "patched",
    "version_of",
    "weakenings",
]

_FIELDS = ("scope", "id", "period", "limit", "mode", "stages", "alerts")
REPLACED_FIELDS = ("limit", "mode", "stages", "alerts")  # what a PUT must send: it replaces the whole budget


def budget_from_input(principal: Principal, org: OrgConfig, data: Mapping[str, Any]) -> Budget:
    """The budget the input describes, for the principal's org. Raises :class:`BudgetFileError` naming the
    field (``limit``, ``stages``, ``alerts.80`` ...) and :class:`ForbiddenError` for another org."""
    if "org" in data and data["org"] != principal.org_id:
        raise ForbiddenError("org", "a budget can only be set for your own org")
    spec = {name: data[name] for name in _FIELDS if name in data and data[name] not in (None, "")}
    unknown = set(data) - {*_FIELDS, "org", "csrf"}
    if unknown:
        raise BudgetFileError(sorted(unknown)[0], "unknown field")
    if isinstance(spec.get("stages"), str):
        try:
            spec["stages"] = [int(part) for part in spec["stages"].replace(" ", "").split(",") if part]
        except ValueError:
            raise BudgetFileError("stages", "comma-separated whole percentages, such as 50,80,100") from None
    try:
        return parse_budget_spec({**spec, "org": principal.org_id}, {org.org_id: org}, "budget")
    except BudgetFileError as exc:
        raise BudgetFileError(exc.field.removeprefix("budget.").removeprefix("budget"), exc.reason) from None


# at most how many periods of the first kind touch one period of the second (a month meets at most 6 weeks)
_PERIODS_IN = {
    (Period.DAILY, Period.WEEKLY): 7,
    (Period.DAILY, Period.MONTHLY): 31,
    (Period.WEEKLY, Period.MONTHLY): 6,
}
_LENGTH = {Period.DAILY: 1, Period.WEEKLY: 7, Period.MONTHLY: 31}


def check_may_save(
    principal: Principal,
    budget: Budget,
    user_department: str | None = None,
    department_budgets: Sequence[Budget] = (),
) -> None:
    """Raises :class:`ForbiddenError` unless the principal may create, change or delete ``budget``.

    A department manager may only set user budgets for users of their departments (``user_department``:
    where the user's usage is counted), and never above what a budget of that department allows over the
    same time, whatever the two periods are (``department_budgets``: the department's budgets):

    * against a department budget of the same or a longer period, the user's limit is at most the
      department's (a daily $1,000 under a monthly $40 is refused);
    * against a shorter one, at most the department's limit times the most of its periods that touch one
      of the user's (a monthly user budget under a $10 daily department budget: at most 31 x $10)."""
    if principal.can(Right.EDIT_BUDGETS):
        return
    if not principal.can(Right.EDIT_USER_BUDGETS):
        raise ForbiddenError("", f"the {principal.role.value} role cannot change budgets")
    if budget.scope is not ScopeKind.USER:
        raise ForbiddenError("scope", "a department manager sets user budgets only")
    if user_department is None or user_department not in principal.departments:
        raise ForbiddenError("id", f"user {budget.scope_id!r} has no usage in your departments")
    for department in department_budgets:
        times = 1
        if _LENGTH[department.period] < _LENGTH[budget.period]:
            times = _PERIODS_IN[(department.period, budget.period)]
        if budget.limit_nanos > department.limit_nanos * times:
            over = f" x {times} {department.period.value} periods" if times > 1 else ""
            raise ForbiddenError(
                "limit",
                f"above the {department.period.value} budget of department {user_department} "
                f"({format_usd(department.limit_nanos)}{over})",
            )


def missing_for_replace(data: Mapping[str, Any]) -> list[str]:
    """The fields a replacing PUT lacks: a budget is never half-sent and silently filled with defaults."""
    return [name for name in REPLACED_FIELDS if name not in data]


def patched(current: Budget, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The input that keeps everything of ``current`` but what ``changes`` (a PATCH body) sends."""
    view = budget_view(current)
    base = {name: view[name] for name in _FIELDS}
    return {**base, **changes}


def weakenings(before: Budget, after: Budget) -> list[str]:
    """How a change loosens enforcement (empty when it does not): audited with before and after."""
    found = []
    if before.mode is BudgetMode.HARD and after.mode is not BudgetMode.HARD:
        found.append("hard cap made soft")
    if after.limit_nanos > before.limit_nanos:
        found.append(f"limit raised from {format_usd(before.limit_nanos)} to {format_usd(after.limit_nanos)}")
    removed = sorted(set(before.stages) - set(after.stages))
    if removed:
        found.append("stages removed: " + ", ".join(f"{s} %" for s in removed))
    dropped = sorted(
        f"{route}: {name}"
        for route, names in before.alerts.items()
        for name in names
        if name not in after.alerts.get(route, ())
    )
    if dropped:
        found.append("alert recipients removed: " + "; ".join(dropped))
    return found


def version_of(budget: Budget | None) -> str:
    """The ETag of a budget as stored: changes whenever anything about it changes."""
    if budget is None:
        return '"absent"'
    return '"' + hashlib.sha256(budget_record(budget).value or b"").hexdigest()[:20] + '"'


def budget_view(budget: Budget) -> dict[str, Any]:
    """A budget as the API answers it (and as it takes it back)."""
    return {
        "key": budget.key,
        "scope": budget.scope.value,
        "id": budget.scope_id,
        "period": budget.period.value,
        "limit": str(to_usd(budget.limit_nanos)),
        "limit_nanos": budget.limit_nanos,
        "mode": budget.mode.value,
        "stages": list(budget.stages),
        "alerts": {route: list(names) for route, names in budget.alerts.items()},
        "version": version_of(budget),
    }
