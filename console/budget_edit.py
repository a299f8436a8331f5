"""Budget Settings' rules (pure): a budget from what the form or the API sent, who may save it, and the
version a concurrent edit is detected by.

Input takes the budgets file's shape (``scope``, ``id``, ``period``, ``limit`` in USD, ``mode``,
``stages``, ``alerts``) and goes through the same parser as ``budgets apply``; the org is always the
signed-in principal's, never the request's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from console.roles import Principal, Right
from schemas.budget_file import BudgetFileError, parse_budget_spec
from schemas.budgets import Budget, OrgConfig, ScopeKind
from schemas.config_records import budget_record
from schemas.errors import SpendstreamError
from schemas.money import format_usd, to_usd

__all__ = ["ForbiddenError", "budget_from_input", "budget_view", "check_may_save", "version_of"]

_FIELDS = ("scope", "id", "period", "limit", "mode", "stages", "alerts")


class ForbiddenError(SpendstreamError):
    """The principal may not do this (HTTP 403); ``field`` names what it may not touch."""


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


def check_may_save(
    principal: Principal,
    budget: Budget,
    user_department: str | None = None,
    department_budget: Budget | None = None,
) -> None:
    """Raises :class:`ForbiddenError` unless the principal may create, change or delete ``budget``.

    A department manager may only set user budgets for users of their departments (``user_department``:
    where the user's usage is counted), at most the department's own budget for the same period."""
    if principal.can(Right.EDIT_BUDGETS):
        return
    if not principal.can(Right.EDIT_USER_BUDGETS):
        raise ForbiddenError("", f"the {principal.role.value} role cannot change budgets")
    if budget.scope is not ScopeKind.USER:
        raise ForbiddenError("scope", "a department manager sets user budgets only")
    if user_department is None or user_department not in principal.departments:
        raise ForbiddenError("id", f"user {budget.scope_id!r} has no usage in your departments")
    if department_budget is not None and budget.limit_nanos > department_budget.limit_nanos:
        raise ForbiddenError(
            "limit",
            f"above the {budget.period.value} budget of department {user_department} "
            f"({format_usd(department_budget.limit_nanos)})",
        )


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
