"""Who may do what in the console: roles per org and the rights each holds (pure).

* ``owner``: everything, including console users and API tokens;
* ``admin``: budgets, alert channels and reports;
* ``finance``: reads everything, reports and exports; edits no budget;
* ``manager`` (department manager): reads their departments only, and sets user budgets inside them,
  never above the department's own budget for the period;
* ``viewer``: reads only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Principal", "Right", "Role", "narrowed"]


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    FINANCE = "finance"
    MANAGER = "manager"
    VIEWER = "viewer"


class Right(StrEnum):
    READ = "read"  # usage, budgets, forecasts, alerts (a manager: of their departments)
    READ_ALL = "read_all"  # the whole org rather than some departments
    EDIT_BUDGETS = "edit_budgets"  # any budget of the org
    EDIT_USER_BUDGETS = "edit_user_budgets"  # user budgets inside one's departments
    EDIT_CHANNELS = "edit_channels"
    REPORTS = "reports"
    MANAGE_ACCESS = "manage_access"  # console users and API tokens


_RIGHTS: dict[Role, frozenset[Right]] = {
    Role.OWNER: frozenset(Right),
    Role.ADMIN: frozenset(
        {Right.READ, Right.READ_ALL, Right.EDIT_BUDGETS, Right.EDIT_USER_BUDGETS, Right.EDIT_CHANNELS, Right.REPORTS}
    ),
    Role.FINANCE: frozenset({Right.READ, Right.READ_ALL, Right.REPORTS}),
    Role.MANAGER: frozenset({Right.READ, Right.EDIT_USER_BUDGETS}),
    Role.VIEWER: frozenset({Right.READ, Right.READ_ALL}),
}


def narrowed(
    token_role: Role, token_departments: tuple[str, ...], maker_role: Role, maker_departments: tuple[str, ...]
) -> tuple[Role, tuple[str, ...]] | None:
    """What a token may do now that its maker holds ``maker_role``: never more than the maker.

    The token's own role while the maker holds all its rights; the maker's role (and departments) when
    the maker now holds fewer; None (the token no longer works) when neither covers the other."""
    mine, theirs = _RIGHTS[token_role], _RIGHTS[maker_role]
    if token_role is Role.MANAGER and maker_role is Role.MANAGER:
        both = tuple(d for d in token_departments if d in maker_departments)
        return (Role.MANAGER, both) if both else None
    if mine <= theirs and maker_role is not Role.MANAGER:
        return token_role, token_departments
    if theirs <= mine:
        return maker_role, maker_departments
    return None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a signed-in console user or an API token, always bound to one org."""

    org_id: str
    name: str  # the username, or "token:<name>"
    role: Role
    departments: tuple[str, ...] = ()  # a manager's departments
    user: str = field(default="", compare=False)  # the console user behind it (a token's maker)

    def can(self, right: Right) -> bool:
        return right in _RIGHTS[self.role]

    def sees_department(self, department: str) -> bool:
        return self.can(Right.READ_ALL) or department in self.departments
