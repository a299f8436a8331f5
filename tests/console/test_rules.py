"""The console's pure rules: roles, budget input and who may save it, versions, sign-in throttling,
and the access store (users, sessions, tokens, audit) on a SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.budget_edit import ForbiddenError, budget_from_input, check_may_save, version_of
from console.roles import Principal, Right, Role
from console.store import AccessError, AccessStore
from console.throttle import SignInThrottle
from schemas.budget_file import BudgetFileError
from schemas.budgets import OrgConfig

ADMIN = Principal("acme", "ada", Role.ADMIN)
MANAGER = Principal("acme", "max", Role.MANAGER, ("eng",))
ORG = OrgConfig("acme", timezone="Europe/Berlin")


def test_each_role_holds_its_rights() -> None:
    assert Principal("acme", "o", Role.OWNER).can(Right.MANAGE_ACCESS)
    assert not ADMIN.can(Right.MANAGE_ACCESS) and ADMIN.can(Right.EDIT_BUDGETS)
    finance = Principal("acme", "f", Role.FINANCE)
    assert finance.can(Right.REPORTS) and not finance.can(Right.EDIT_BUDGETS)
    viewer = Principal("acme", "v", Role.VIEWER)
    assert viewer.can(Right.READ_ALL) and not viewer.can(Right.EDIT_USER_BUDGETS)
    assert MANAGER.sees_department("eng") and not MANAGER.sees_department("sales")
    assert not MANAGER.can(Right.READ_ALL)


def test_budget_input_is_read_like_the_budgets_file_with_the_principals_org() -> None:
    budget = budget_from_input(ADMIN, ORG, {"scope": "user", "id": "u1", "limit": "12.50", "stages": "50, 100"})
    assert (budget.org_id, budget.limit_nanos, budget.stages, budget.timezone) == (
        "acme",
        12_500_000_000,
        (50, 100),
        "Europe/Berlin",
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"scope": "user", "id": "u1", "limit": "abc"}, "limit"),
        ({"scope": "user", "id": "u1", "limit": "0.0000000001"}, "limit"),
        ({"scope": "user", "id": "u1", "limit": "1", "stages": "80,50"}, "stages"),
        ({"scope": "user", "id": "u1", "limit": "1", "stages": "fifty"}, "stages"),
        ({"scope": "team", "id": "x", "limit": "1"}, "scope"),
        ({"scope": "user", "limit": "1"}, "id"),
        ({"scope": "user", "id": "a b", "limit": "1"}, "id"),
        ({"scope": "user", "id": "u1", "period": "yearly", "limit": "1"}, "period"),
        ({"scope": "user", "id": "u1", "limit": "1", "mode": "strict"}, "mode"),
        ({"scope": "user", "id": "u1", "limit": "1", "alerts": {"75": ["ops"]}}, "alerts.75"),
        ({"scope": "user", "id": "u1", "limit": "1", "colour": "red"}, "colour"),
    ],
)
def test_bad_budget_input_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(BudgetFileError) as info:
        budget_from_input(ADMIN, ORG, data)
    assert info.value.field == field, info.value


def test_another_org_in_the_input_is_refused() -> None:
    with pytest.raises(ForbiddenError) as info:
        budget_from_input(ADMIN, ORG, {"org": "globex", "scope": "user", "id": "u1", "limit": "1"})
    assert info.value.field == "org"


def test_a_manager_sets_user_budgets_inside_their_departments_never_above_the_department() -> None:
    user = budget_from_input(MANAGER, ORG, {"scope": "user", "id": "u1", "limit": "50"})
    department = budget_from_input(ADMIN, ORG, {"scope": "department", "id": "eng", "limit": "40"})
    check_may_save(
        MANAGER, budget_from_input(MANAGER, ORG, {"scope": "user", "id": "u1", "limit": "40"}), "eng", department
    )
    with pytest.raises(ForbiddenError, match="above the monthly budget of department eng"):
        check_may_save(MANAGER, user, "eng", department)
    with pytest.raises(ForbiddenError, match="no usage in your departments"):
        check_may_save(MANAGER, user, "sales", None)
    with pytest.raises(ForbiddenError, match="user budgets only"):
        check_may_save(MANAGER, department, "eng", None)
    with pytest.raises(ForbiddenError, match="viewer role cannot change budgets"):
        check_may_save(Principal("acme", "v", Role.VIEWER), user, "eng", None)
    check_may_save(ADMIN, department)


def test_a_version_changes_with_anything_about_the_budget() -> None:
    one = budget_from_input(ADMIN, ORG, {"scope": "user", "id": "u1", "limit": "1"})
    assert version_of(one) == version_of(budget_from_input(ADMIN, ORG, {"scope": "user", "id": "u1", "limit": "1"}))
    assert version_of(one) != version_of(budget_from_input(ADMIN, ORG, {"scope": "user", "id": "u1", "limit": "2"}))
    assert version_of(one) != version_of(None) == '"absent"'


def test_sign_in_throttle_waits_after_too_many_failures() -> None:
    throttle = SignInThrottle(attempts=3, window_s=60)
    for t in range(3):
        assert throttle.wait_s("ada", "1.2.3.4", 100 + t) == 0
        throttle.failed("ada", "1.2.3.4", 100 + t)
    assert throttle.wait_s("ada", "1.2.3.4", 103) == pytest.approx(57)
    assert throttle.wait_s("ada", "5.6.7.8", 103) == 0  # another address is not held
    assert throttle.wait_s("ada", "1.2.3.4", 161) == 0  # the window passed
    throttle.failed("bob", "1.2.3.4", 100)
    throttle.succeeded("bob", "1.2.3.4")
    assert throttle.wait_s("bob", "1.2.3.4", 100) == 0


def test_access_store_users_sessions_tokens_and_audit_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    store = AccessStore(path)
    store.create_user("acme", "ada", "correct horse battery", "owner")
    with pytest.raises(AccessError) as info:
        store.create_user("acme", "ada", "correct horse battery", "owner")
    assert info.value.field == "username"
    with pytest.raises(AccessError) as info:
        store.create_user("acme", "bob", "short", "viewer")
    assert info.value.field == "password"
    with pytest.raises(AccessError) as info:
        store.create_user("acme", "max", "correct horse battery", "manager")
    assert info.value.field == "departments"
    assert store.sign_in("ada", "wrong password!!") is None
    assert store.sign_in("nobody", "correct horse battery") is None
    signed = store.sign_in("ada", "correct horse battery")
    assert signed is not None
    session_id, session = signed
    token_id, token = store.create_token("acme", "ledger", "finance", "ada")
    store.audit("acme", "ada", "budget.create", "user/u1/monthly", None, {"limit": "1"})

    again = AccessStore(path)  # a restart
    found = again.session(session_id)
    assert found is not None and found.principal == Principal("acme", "ada", Role.OWNER)
    assert found.csrf == session.csrf
    assert again.token(token) == Principal("acme", "token:ledger", Role.FINANCE)
    assert session_id not in path.read_bytes().decode("latin-1") and token not in path.read_bytes().decode("latin-1")
    assert [e.action for e in again.audit_trail("acme")] == ["budget.create"]
    assert again.audit_trail("globex") == []
    assert not again.revoke_token("globex", token_id)  # another org's owner cannot revoke it
    assert again.revoke_token("acme", token_id) and again.token(token) is None
    again.sign_out(session_id)
    assert again.session(session_id) is None
    signed = again.sign_in("ada", "correct horse battery")
    assert signed is not None and again.session(signed[0], now=10**12) is None  # expired
