"""The console's pure rules: roles, budget input and who may save it, versions, sign-in throttling,
and the access store (users, sessions, tokens, audit) on a SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from console.access_store import SESSION_TTL_S, AccessError, AccessStore, Session
from console.budget_edit import (
    budget_from_input,
    check_may_save,
    missing_for_replace,
    patched,
    version_of,
    weakenings,
)
from console.credentials import hash_password
from console.id_tokens import SsoRefused
from console.roles import Principal, Right, Role, narrowed
from console.sso_store import FLOW_TTL_S, Flow, SsoStore
from console.throttle import SignInThrottle
from schemas.budget_file import BudgetFileError
from schemas.budgets import OrgConfig
from schemas.errors import ForbiddenError

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
        MANAGER, budget_from_input(MANAGER, ORG, {"scope": "user", "id": "u1", "limit": "40"}), "eng", [department]
    )
    with pytest.raises(ForbiddenError, match="above the monthly budget of department eng"):
        check_may_save(MANAGER, user, "eng", [department])
    with pytest.raises(ForbiddenError, match="no usage in your departments"):
        check_may_save(MANAGER, user, "sales")
    with pytest.raises(ForbiddenError, match="user budgets only"):
        check_may_save(MANAGER, department, "eng")
    with pytest.raises(ForbiddenError, match="viewer role cannot change budgets"):
        check_may_save(Principal("acme", "v", Role.VIEWER), user, "eng")
    check_may_save(ADMIN, department)


def test_a_version_changes_with_anything_about_the_budget() -> None:
    one = budget_from_input(ADMIN, ORG, {"scope": "user", "id": "u1", "limit": "1"})
    assert version_of(one) == version_of(budget_from_input(ADMIN, ORG, {"scope": "user", "id": "u1", "limit": "1"}))
    assert version_of(one) != version_of(budget_from_input(ADMIN, ORG, {"scope": "user", "id": "u1", "limit": "2"}))
    assert version_of(one) != version_of(None) == '"absent"'


def test_sign_in_throttle_counts_an_attempt_before_it_is_checked() -> None:
    throttle = SignInThrottle(attempts=3, window_s=60, per_user_attempts=5)
    # a burst: every attempt is counted as it begins, so the fourth waits although none has failed yet
    assert [throttle.begin("ada", "1.2.3.4", 100) for _ in range(4)][:3] == [0, 0, 0]
    assert throttle.begin("ada", "1.2.3.4", 103) == pytest.approx(57)
    assert throttle.begin("ada", "1.2.3.4", 161) == 0  # the window passed
    throttle.succeeded("ada", "1.2.3.4", 161)
    assert throttle.begin("bob", "1.2.3.4", 100) == 0
    throttle.succeeded("bob", "1.2.3.4", 100)
    assert len(throttle) == 0  # a success gives its slot back


def test_sign_in_throttle_holds_a_user_whatever_the_address() -> None:
    throttle = SignInThrottle(attempts=3, window_s=60, per_user_attempts=5)
    checked = sum(throttle.begin("ada", f"10.0.0.{i}", 100 + i) == 0 for i in range(20))
    assert checked == 5  # a new address each time gets no new guesses past the user's own limit
    assert throttle.begin("ada", "10.0.1.1", 130) > 0
    assert throttle.begin("bob", "10.0.1.1", 130) == 0  # another user is not held


def test_sign_in_throttle_is_bounded_and_keeps_running_lock_outs() -> None:
    throttle = SignInThrottle(attempts=2, window_s=60, per_user_attempts=100, max_keys=10)
    throttle.begin("victim", "1.1.1.1", 100)
    throttle.begin("victim", "1.1.1.1", 100)  # locked out at this address until 160
    for i in range(50):  # a flood of names, each one attempt
        throttle.begin(f"flood{i}", "2.2.2.2", 101)
        assert len(throttle) <= 10
    assert throttle.begin("victim", "1.1.1.1", 110) > 0  # the lock-out survived the flood
    assert throttle.begin("victim", "1.1.1.1", 161) == 0


def test_a_token_never_does_more_than_its_maker() -> None:
    assert narrowed(Role.ADMIN, (), Role.OWNER, ()) == (Role.ADMIN, ())
    assert narrowed(Role.OWNER, (), Role.VIEWER, ()) == (Role.VIEWER, ())  # the maker was demoted
    assert narrowed(Role.FINANCE, (), Role.ADMIN, ()) == (Role.FINANCE, ())
    assert narrowed(Role.MANAGER, ("eng", "ops"), Role.MANAGER, ("eng",)) == (Role.MANAGER, ("eng",))
    assert narrowed(Role.MANAGER, ("ops",), Role.MANAGER, ("eng",)) is None
    assert narrowed(Role.VIEWER, (), Role.MANAGER, ("eng",)) is None  # neither covers the other


def test_a_manager_is_held_to_the_department_over_the_same_time_whatever_the_periods() -> None:
    monthly_40 = budget_from_input(ADMIN, ORG, {"scope": "department", "id": "eng", "limit": "40"})
    daily_10 = budget_from_input(ADMIN, ORG, {"scope": "department", "id": "eng", "limit": "10", "period": "daily"})
    daily_user = budget_from_input(MANAGER, ORG, {"scope": "user", "id": "u1", "limit": "1000", "period": "daily"})
    with pytest.raises(ForbiddenError, match="above the monthly budget of department eng"):
        check_may_save(MANAGER, daily_user, "eng", [monthly_40])
    monthly_user = budget_from_input(MANAGER, ORG, {"scope": "user", "id": "u1", "limit": "311"})
    with pytest.raises(ForbiddenError, match=r"daily budget of department eng \(\$10.00 x 31 daily periods\)"):
        check_may_save(MANAGER, monthly_user, "eng", [daily_10])
    check_may_save(MANAGER, budget_from_input(MANAGER, ORG, {"scope": "user", "id": "u1", "limit": "40"}), "eng",
                   [monthly_40, daily_10])  # fmt: skip


def test_a_put_must_send_every_field_it_replaces_and_weakening_is_named() -> None:
    assert missing_for_replace({"limit": "120"}) == ["mode", "stages", "alerts"]
    assert missing_for_replace({"limit": "1", "mode": "hard", "stages": [], "alerts": {}}) == []
    hard = budget_from_input(
        ADMIN, ORG, {"scope": "department", "id": "eng", "limit": "100", "mode": "hard", "stages": [90, 100],
                     "alerts": {"100": ["oncall"]}},
    )  # fmt: skip
    kept = budget_from_input(ADMIN, ORG, patched(hard, {"limit": "90"}))
    assert (kept.mode, kept.stages, dict(kept.alerts)) == (hard.mode, hard.stages, dict(hard.alerts))
    soft = budget_from_input(ADMIN, ORG, {"scope": "department", "id": "eng", "limit": "120"})
    assert weakenings(hard, soft) == [
        "hard cap made soft",
        "limit raised from $100.00 to $120.00",
        "stages removed: 90 %",
        "alert recipients removed: 100: oncall",
    ]
    assert weakenings(hard, kept) == []


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
    assert sign_in(store, "acme", "ada", "wrong password!!") is None
    assert sign_in(store, "acme", "nobody", "correct horse battery") is None
    signed = sign_in(store, "acme", "ada", "correct horse battery")
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
    signed = sign_in(again, "", "ada", "correct horse battery")  # the org may be left out: one ada only
    assert signed is not None and again.session(signed[0], now=10**12) is None  # expired
    sign_in(again, "acme", "ada", "correct horse battery", now=10**12)
    assert again.sessions_count() == 1  # expired sessions are removed as new ones begin


def sign_in(
    store: AccessStore, org: str, username: str, password: str, now: float | None = None
) -> tuple[str, Session] | None:
    """As the sign-in page does: the password checked, then a session opened."""
    found = store.check_password(org, username, password)
    return None if found is None else store.open_session(found[0], username, SESSION_TTL_S, now)


def test_a_version_2_database_gains_single_sign_on_identities_and_keeps_its_users(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE users (org_id TEXT NOT NULL, username TEXT NOT NULL, role TEXT NOT NULL, departments TEXT "
        "NOT NULL DEFAULT '', password TEXT NOT NULL, created_at REAL NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (org_id, username)); PRAGMA user_version = 2;"
    )
    old.execute(
        "INSERT INTO users VALUES ('acme', 'ada', 'owner', '', ?, 0, 0)", (hash_password("correct horse battery"),)
    )
    old.commit()
    old.close()
    store = AccessStore(path)
    assert sign_in(store, "acme", "ada", "correct horse battery") is not None
    sso = SsoStore(store)
    done = sso.provision("acme", "https://idp.example", "sub-1", "ada", Role.VIEWER, (), 60)
    assert done.session.principal.name == "ada-2" and done.before is None  # a local ada is another identity
    assert sso.issuer_of("acme", "ada-2") == "https://idp.example" and sso.issuer_of("acme", "ada") == ""
    assert store.check_password("acme", "ada-2", "") is None  # a user of single sign-on has no password


def test_usernames_are_per_org_ascii_and_a_removed_or_demoted_user_takes_their_tokens_along(tmp_path: Path) -> None:
    store = AccessStore(tmp_path / "console.db")
    store.create_user("acme", "admin", "correct horse battery", "owner")
    store.create_user("globex", "admin", "another horse battery", "owner")  # not taken, not revealed
    with pytest.raises(AccessError, match="ASCII"):
        store.create_user("acme", "\u0430dmin", "correct horse battery", "owner")  # a Cyrillic a
    assert sign_in(store, "", "admin", "correct horse battery") is None  # two orgs: name yours
    signed = sign_in(store, "globex", "admin", "another horse battery")
    assert signed is not None and signed[1].principal.org_id == "globex"
    store.create_user("acme", "olga", "correct horse battery", "owner")
    _, owner_token = store.create_token("acme", "ci", "owner", "olga")
    _, finance_token = store.create_token("acme", "ledger", "finance", "olga")
    assert store.token(owner_token) == Principal("acme", "token:ci", Role.OWNER)
    store.set_role("acme", "olga", "finance")
    assert store.token(owner_token) == Principal("acme", "token:ci", Role.FINANCE)  # narrowed to the maker
    assert store.delete_user("acme", "olga")
    assert store.token(owner_token) is None and store.token(finance_token) is None
    store.create_user("acme", "olga", "correct horse battery", "owner")
    assert store.token(owner_token) is None  # a new user of the same name gets no old tokens back
    assert all(t.revoked_at for t in store.tokens("acme"))


def test_a_version_one_database_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "console.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE users (username TEXT PRIMARY KEY, org_id TEXT NOT NULL, role TEXT NOT NULL, "
        "departments TEXT NOT NULL DEFAULT '', password TEXT NOT NULL, created_at REAL NOT NULL, "
        "disabled INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE sessions (id_digest TEXT PRIMARY KEY, username TEXT NOT NULL REFERENCES users(username) "
        "ON DELETE CASCADE, csrf TEXT NOT NULL, expires_at REAL NOT NULL);"
    )
    from console.credentials import hash_password

    old.execute("INSERT INTO users VALUES ('ada', 'acme', 'owner', '', ?, 0, 0)", (hash_password("x" * 12),))
    old.commit()
    old.close()
    store = AccessStore(path)
    assert [u.username for u in store.users("acme")] == ["ada"]
    assert sign_in(store, "acme", "ada", "x" * 12) is not None
    AccessStore(path)  # and opening it again changes nothing


def test_a_sign_in_flow_is_used_once_and_an_org_has_a_bounded_number_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sso = SsoStore(AccessStore(tmp_path / "console.db"))
    flow = Flow("hooli", "state", "nonce", "verifier", "/billing")
    flow_id = sso.start_flow(flow, now=1000.0)
    assert sso.take_flow(flow_id, now=1001.0) == flow
    with pytest.raises(SsoRefused) as info:
        sso.take_flow(flow_id, now=1002.0)
    assert (info.value.field, info.value.org_id) == ("replayed", "hooli")
    late = sso.start_flow(flow, now=2000.0)
    with pytest.raises(SsoRefused, match="10 minutes"):
        sso.take_flow(late, now=2000.0 + FLOW_TTL_S + 1)
    monkeypatch.setattr("console.sso_store.MAX_FLOWS", 3)
    for _ in range(3):  # those of 1000 and 2000 have expired and are gone
        sso.start_flow(flow, now=3000.0)
    with pytest.raises(SsoRefused) as info:
        sso.start_flow(flow, now=3000.0)
    assert info.value.status == 429
    sso.start_flow(Flow("acme", "s", "n", "v", "/"), now=3000.0)  # another org's sign-ins are not held up
