"""What the console changes, one code path for the pages and the API: each action checks the principal's
rights and the version it was given (If-Match), publishes through the config topic like ``budgets
apply``, and audits who, when, before and after."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from console.access_store import AccessStore
from console.budget_edit import (
    budget_from_input,
    budget_view,
    check_may_save,
    version_of,
    weakenings,
)
from console.channel_edit import channel_from_input, channel_view, routing_from_input
from console.preview import PeriodPreview, preview, preview_window
from console.readmodels import Reader
from console.roles import Principal, Right
from schemas.budgets import Budget, BudgetMode, Period, ScopeKind
from schemas.config_records import ConfigRecord, budget_key, budget_record
from schemas.errors import ConflictError, ForbiddenError, NotFoundError, PreconditionError, SpendstreamError
from schemas.params import whole_number
from sinks import report_queries

__all__ = ["Actions", "require"]


class Actions:
    def __init__(self, reader: Reader, access: AccessStore, webhook_allow: frozenset[str] = frozenset()) -> None:
        self.reader = reader
        self.access = access
        self.config = reader.config
        self.webhook_allow = webhook_allow  # internal hosts an org's webhook may name (the operator's list)

    def budget(self, principal: Principal, key: str) -> Budget:
        """One budget the principal may see (``user/u1/monthly``)."""
        found = self.config.state().budgets.get(f"budget/{principal.org_id}/{key}")
        if found is None or found not in self.reader.visible_budgets(principal, datetime.now(UTC)):
            raise NotFoundError("key", f"no budget {key!r}")
        return found

    def stored_budget(self, principal: Principal, key: str) -> Budget:
        """A budget of the principal's org as stored, whether or not the principal may see it: the rights to
        change it are checked when it is saved (a PATCH answers 403, as a PUT does, not 404)."""
        found = self.config.state().budgets.get(f"budget/{principal.org_id}/{key}")
        if found is None:
            raise NotFoundError("key", f"no budget {key!r}")
        return found

    def save_budget(
        self, principal: Principal, data: Mapping[str, Any], if_match: str | None, creating: bool = False
    ) -> Budget:
        """Create or replace a budget. ``if_match`` is the version it was read at (``"absent"`` to create);
        ``None`` replaces whatever is there (the API requires it unless ``creating``)."""
        org = self.reader.org(principal)
        budget = budget_from_input(principal, org, data)
        with self.config.edit_lock:
            state = self.config.state(fresh=True)
            self._check_channels(budget, state.channels)
            key = budget_key(budget.org_id, budget.scope.value, budget.scope_id, budget.period.value)
            current = state.budgets.get(key)
            # rights first: one who may not change the budget learns nothing of its version
            self._check_rights(principal, budget, state.budgets)
            if current is not None:
                self._check_rights(principal, current, state.budgets)
            if creating and current is not None:
                raise ConflictError("key", f"budget {budget.key} exists already; change it instead")
            if if_match is not None and if_match != version_of(current):
                raise PreconditionError("version", "the budget was changed by someone else; reload and try again")
            self.config.publish([budget_record(budget)])
        weakened = weakenings(current, budget) if current is not None else []
        action = "budget.create" if current is None else "budget.weaken" if weakened else "budget.update"
        after = {**budget_view(budget), "weakened": weakened} if weakened else budget_view(budget)
        self.access.audit(
            principal.org_id, principal.name, action, budget.key, budget_view(current) if current else None, after
        )
        return budget

    def preview(self, principal: Principal, data: Mapping[str, Any]) -> tuple[Budget, list[PeriodPreview]]:
        """What the budget in ``data`` would have done over the last 30 days (nothing is saved)."""
        budget = budget_from_input(principal, self.reader.org(principal), data)
        self._check_rights(principal, budget, self.config.state().budgets)
        start, end = preview_window(budget, datetime.now(UTC))
        store, db, scope = self.reader.store, self.reader.db, budget.scope.value
        days = store.query(
            *report_queries.budget_days(db, budget.org_id, scope, budget.scope_id, start, end, budget.timezone)
        )
        over: dict[Any, int] = {}
        if budget.mode is BudgetMode.HARD:
            found = store.query(
                *report_queries.requests_over_limit(
                    db, budget.org_id, scope, budget.scope_id, budget.period.value, start, end, budget.timezone,
                    budget.limit_nanos,
                )
            )  # fmt: skip
            over = {first: int(count) for first, count in found}
        return budget, preview(budget, ((d, int(c), int(n)) for d, c, n in days), over)

    def delete_budget(self, principal: Principal, key: str, if_match: str | None) -> None:
        with self.config.edit_lock:
            state = self.config.state(fresh=True)
            current = state.budgets.get(f"budget/{principal.org_id}/{key}")
            if current is None:
                raise NotFoundError("key", f"no budget {key!r}")
            self._check_rights(principal, current, state.budgets)
            if if_match is not None and if_match != version_of(current):
                raise PreconditionError("version", "the budget was changed by someone else; reload and try again")
            self.config.publish([ConfigRecord(f"budget/{principal.org_id}/{key}", None)])
        self.access.audit(principal.org_id, principal.name, "budget.delete", key, budget_view(current), None)

    def save_channel(self, principal: Principal, data: Mapping[str, Any]) -> str:
        """Create or replace an alert channel of the principal's org; returns its name."""
        require(principal, Right.EDIT_CHANNELS)
        record = channel_from_input(principal.org_id, data, self.webhook_allow, self.config.state().orgs)
        name = record.key.rsplit("/", 1)[1]
        with self.config.edit_lock:
            before = self.config.state(fresh=True).channels.get((principal.org_id, name))
            self.config.publish([record])
        after = json.loads(record.value or b"{}")
        shown = {k: v for k, v in after.items() if k not in ("url", "routing_key")}  # secrets stay out of the audit
        self.access.audit(
            principal.org_id, principal.name, "channel.save", name, before and channel_view(before), shown
        )
        return name

    def delete_channel(self, principal: Principal, name: str) -> None:
        require(principal, Right.EDIT_CHANNELS)
        with self.config.edit_lock:
            state = self.config.state(fresh=True)
            current = state.channels.get((principal.org_id, name))
            if current is None:
                raise NotFoundError("name", f"no alert channel {name!r}")
            users = [b.key for b in state.budgets.values() if b.org_id == principal.org_id
                     and any(name in names for names in b.alerts.values())]  # fmt: skip
            routing = state.routing.get(principal.org_id)
            if routing and (name in routing.default or any(name in n for n in routing.by_kind.values())):
                users.append("the org's routing")
            if users:
                raise ConflictError("name", f"{name} is still used by {', '.join(users)}")
            self.config.publish([ConfigRecord(f"channel/{principal.org_id}/{name}", None)])
        self.access.audit(principal.org_id, principal.name, "channel.delete", name, channel_view(current), None)

    def save_routing(self, principal: Principal, data: Mapping[str, Any]) -> None:
        require(principal, Right.EDIT_CHANNELS)
        with self.config.edit_lock:
            state = self.config.state(fresh=True)
            known = {name for org, name in state.channels if org == principal.org_id}
            record = routing_from_input(principal.org_id, data, known)
            before = state.routing.get(principal.org_id)
            self.config.publish([record])
        previous = (
            {"default": list(before.default), **{k: list(v) for k, v in before.by_kind.items()}} if before else None
        )
        self.access.audit(
            principal.org_id, principal.name, "routing.save", "routing", previous, json.loads(record.value or b"{}")
        )

    def create_user(self, principal: Principal, username: str, password: str, role: str, departments: str) -> None:
        """A console user of the principal's org (owners only)."""
        require(principal, Right.MANAGE_ACCESS)
        scoped = tuple(d.strip() for d in departments.split(",") if d.strip())
        self.access.create_user(principal.org_id, username, password, role, scoped)
        self.access.audit(principal.org_id, principal.name, "user.create", username, None, {"role": role})

    def delete_user(self, principal: Principal, username: str) -> None:
        require(principal, Right.MANAGE_ACCESS)
        if username in (principal.name, principal.user):
            raise ForbiddenError("username", "you cannot remove yourself; ask another owner")
        before = self.access.user_role(principal.org_id, username)
        if not self.access.delete_user(principal.org_id, username):
            raise NotFoundError("username", f"no user {username!r} in your org")
        shown = before and {"role": before[0].value, "departments": list(before[1])}
        self.access.audit(principal.org_id, principal.name, "user.delete", username, shown, {"tokens": "revoked"})

    def set_role(self, principal: Principal, username: str, role: str, departments: str) -> None:
        """Change a user's role (owners only): at once for their sessions, and their tokens are narrowed."""
        require(principal, Right.MANAGE_ACCESS)
        if username in (principal.name, principal.user):
            raise ForbiddenError("username", "you cannot change your own role; ask another owner")
        before = self.access.user_role(principal.org_id, username)
        if before is None:
            raise NotFoundError("username", f"no user {username!r} in your org")
        scoped = tuple(d.strip() for d in departments.split(",") if d.strip())
        self.access.set_role(principal.org_id, username, role, scoped)
        self.access.audit(
            principal.org_id,
            principal.name,
            "user.role",
            username,
            {"role": before[0].value, "departments": list(before[1])},
            {"role": role, "departments": list(scoped)},
        )

    def create_token(self, principal: Principal, name: str, role: str, departments: str) -> str:
        """A new API token of the principal's org (shown once); ``departments``: a manager's, comma-separated."""
        require(principal, Right.MANAGE_ACCESS)
        scoped = tuple(d.strip() for d in departments.split(",") if d.strip())
        maker = principal.user or principal.name  # a token made with a token belongs to the same user
        _, token = self.access.create_token(principal.org_id, name, role, maker, scoped)
        self.access.audit(principal.org_id, principal.name, "token.create", name, None, {"role": role})
        return token

    def revoke_token(self, principal: Principal, token_id: str) -> None:
        require(principal, Right.MANAGE_ACCESS)
        number = whole_number(token_id, "id", 1, 2**62)
        if not self.access.revoke_token(principal.org_id, number):
            raise NotFoundError("id", f"no active token {token_id!r} in your org")
        self.access.audit(principal.org_id, principal.name, "token.revoke", token_id, None, None)

    def _check_rights(self, principal: Principal, budget: Budget, budgets: Mapping[str, Budget]) -> None:
        if principal.can(Right.EDIT_BUDGETS):
            return
        home = None
        department_budgets: list[Budget] = []
        if budget.scope is ScopeKind.USER:
            home = self.reader.user_departments(principal.org_id, datetime.now(UTC)).get(budget.scope_id)
            if home is not None:
                department_budgets = [
                    found
                    for period in Period
                    if (found := budgets.get(budget_key(principal.org_id, "department", home, period.value)))
                ]
        check_may_save(principal, budget, home, department_budgets)

    @staticmethod
    def _check_channels(budget: Budget, channels: Mapping[tuple[str, str], Any]) -> None:
        for route, names in budget.alerts.items():
            for name in names:
                if (budget.org_id, name) not in channels:
                    raise SpendstreamError(f"alerts.{route}", f"no alert channel {name!r} in your org")


def require(principal: Principal, right: Right) -> None:
    if not principal.can(right):
        raise ForbiddenError("", f"the {principal.role.value} role cannot do this")
