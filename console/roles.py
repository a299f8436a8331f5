"""Who may do what in the console: roles per org and the rights each holds (pure).

* ``owner``: everything, including console users and API tokens;
* ``admin``: budgets, alert channels and reports;
* ``finance``: reads everything, reports and exports; edits no budget;
* ``manager`` (department manager): reads their departments only, and sets user budgets inside them,
  never above the department's own budget for the period;
* ``viewer``: reads only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Principal", "Right", "Role", "rights_of"]


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


def rights_of(role: Role) -> frozenset[Right]:
    return _RIGHTS[role]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a signed-in console user or an API token, always bound to one org."""

    org_id: str
    name: str  # the username, or "token:<name>"
    role: Role
    departments: tuple[str, ...] = ()  # a manager's departments

    def can(self, right: Right) -> bool:
        return right in _RIGHTS[self.role]

    def sees_department(self, department: str) -> bool:
        return self.can(Right.READ_ALL) or department in self.departments
