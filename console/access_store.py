"""Console users, sessions, API tokens and the audit trail, in one SQLite file.

Why SQLite: these are the console's own records, not derived state. Redis may lose its data and is
rebuilt from Kafka and ClickHouse (``spendstream rebuild``), so it cannot hold them; ClickHouse is
append-only and eventually merged, a poor fit for a session that must be revoked at once; the config
topic would replicate password hashes to every worker. A file in the data directory survives restarts
and rebuilds, needs no service, and is backed up by copying it (``sqlite3 console.db .backup``). Several
console replicas need a shared database instead: the queries are plain SQL.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.credentials import digest, hash_password, new_secret, new_token, verify_password
from console.roles import Principal, Role, narrowed
from schemas.errors import SpendstreamError

__all__ = ["AccessError", "AccessStore", "AuditEntry", "Session", "TokenInfo", "UserInfo"]

SESSION_TTL_S = 12 * 3600
_USERNAME = re.compile(r"[A-Za-z0-9._-]{1,64}")

_SCHEMA_VERSION = 3  # 2: usernames are unique per org, not across orgs; 3: single sign-on identities
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    org_id TEXT NOT NULL, username TEXT NOT NULL, role TEXT NOT NULL, departments TEXT NOT NULL DEFAULT '',
    password TEXT NOT NULL, created_at REAL NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,
    sso_issuer TEXT NOT NULL DEFAULT '', sso_subject TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (org_id, username));
CREATE TABLE IF NOT EXISTS sessions (
    id_digest TEXT PRIMARY KEY, org_id TEXT NOT NULL, username TEXT NOT NULL, csrf TEXT NOT NULL,
    expires_at REAL NOT NULL, FOREIGN KEY (org_id, username) REFERENCES users(org_id, username) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT, digest TEXT UNIQUE NOT NULL, org_id TEXT NOT NULL, name TEXT NOT NULL,
    role TEXT NOT NULL, departments TEXT NOT NULL DEFAULT '', created_by TEXT NOT NULL, created_at REAL NOT NULL,
    revoked_at REAL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, org_id TEXT NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, before TEXT, after TEXT);
CREATE INDEX IF NOT EXISTS audit_by_org ON audit (org_id, id);
"""

# version 2 had no single sign-on: its users are all local (no issuer, no subject)
_MIGRATE_2_TO_3 = """
ALTER TABLE users ADD COLUMN sso_issuer TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN sso_subject TEXT NOT NULL DEFAULT '';
"""

# version 1 keyed users by username alone: copy them over; its sessions end (everyone signs in again)
_MIGRATE_1_TO_2 = """
ALTER TABLE users RENAME TO users_v1;
DROP TABLE IF EXISTS sessions;
"""


class AccessError(SpendstreamError):
    """A user or token that cannot be created as asked; ``field`` names what is wrong."""


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str


@dataclass(frozen=True, slots=True)
class UserInfo:
    username: str
    role: str
    departments: tuple[str, ...]
    created_at: float
    sso: bool = False  # signs in through the org's identity provider, which sets the role at each sign-in


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    role: str
    departments: tuple[str, ...]
    created_by: str
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    before: Any
    after: Any


def _departments(text: str) -> tuple[str, ...]:
    return tuple(d for d in text.split(",") if d)


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise AccessError("role", f"one of {', '.join(r.value for r in Role)}") from None


class AccessStore:
    """Thread-safe (one connection behind a lock; every call is a short transaction)."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.Lock()
        with self._lock:
            self._migrate()

    def _migrate(self) -> None:
        db = self._db
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        old = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'users'").fetchone()
        if old is not None and version < 2:
            db.executescript(_MIGRATE_1_TO_2)
            db.executescript(_SCHEMA)
            db.execute(
                "INSERT INTO users (org_id, username, role, departments, password, created_at, disabled) "
                "SELECT org_id, username, role, departments, password, created_at, disabled FROM users_v1"
            )
            db.execute("DROP TABLE users_v1")
        elif old is not None and version == 2:
            db.executescript(_MIGRATE_2_TO_3)
        db.executescript(_SCHEMA)  # its own transaction
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, for one read (:mod:`console.sso_store` shares it)."""
        with self._lock:
            yield self._db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it or none (:mod:`console.sso_store` shares it)."""
        with self._tx() as db:
            yield db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- users ----------------------------------------------------------------------------------------------------

    def create_user(
        self, org_id: str, username: str, password: str, role: str, departments: tuple[str, ...] = ()
    ) -> None:
        role_ = _role(role)
        if not _USERNAME.fullmatch(username):
            raise AccessError("username", "1-64 ASCII letters, digits, '.', '-' or '_'")
        if role_ is Role.MANAGER and not departments:
            raise AccessError("departments", "a department manager needs at least one department")
        try:
            hashed = hash_password(password)
        except ValueError as exc:
            raise AccessError("password", str(exc).split(": ", 1)[1]) from None
        with self._tx() as db:
            if db.execute(
                "SELECT 1 FROM users WHERE org_id = ? AND username = ?", (org_id, username)
            ).fetchone():  # another org's names are neither seen nor taken
                raise AccessError("username", f"{username!r} exists already in your org")
            db.execute(
                "INSERT INTO users (org_id, username, role, departments, password, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (org_id, username, role_.value, ",".join(departments), hashed, time.time()),
            )

    def users(self, org_id: str) -> list[UserInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT username, role, departments, created_at, sso_subject != '' FROM users "
                "WHERE org_id = ? AND disabled = 0 ORDER BY username",
                (org_id,),
            ).fetchall()
        return [UserInfo(u, r, _departments(d), c, bool(s)) for u, r, d, c, s in rows]

    def delete_user(self, org_id: str, username: str) -> bool:
        """Remove a user: their sessions end and the API tokens they made are revoked."""
        with self._tx() as db:
            if db.execute("DELETE FROM users WHERE org_id = ? AND username = ?", (org_id, username)).rowcount == 0:
                return False
            db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE org_id = ? AND created_by = ? AND revoked_at IS NULL",
                (time.time(), org_id, username),
            )
            return True

    def user_role(self, org_id: str, username: str) -> tuple[Role, tuple[str, ...]] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT role, departments FROM users WHERE org_id = ? AND username = ? AND disabled = 0",
                (org_id, username),
            ).fetchone()
        return None if row is None else (Role(row[0]), _departments(row[1]))

    def set_role(self, org_id: str, username: str, role: str, departments: tuple[str, ...] = ()) -> bool:
        """Change a user's role: their sessions answer with it at the next request, and the tokens they made
        never do more than it (see :func:`console.roles.narrowed`)."""
        role_ = _role(role)
        if role_ is Role.MANAGER and not departments:
            raise AccessError("departments", "a department manager needs at least one department")
        with self._tx() as db:
            return (
                db.execute(
                    "UPDATE users SET role = ?, departments = ? WHERE org_id = ? AND username = ?",
                    (role_.value, ",".join(departments), org_id, username),
                ).rowcount
                > 0
            )

    # -- sessions -------------------------------------------------------------------------------------------------

    def check_password(self, org_id: str, username: str, password: str) -> tuple[str, Role] | None:
        """The user's org and role for the right password of a local user; None otherwise (a user of
        single sign-on has no password)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT org_id, role, password FROM users "
                "WHERE username = ? AND disabled = 0 AND sso_subject = '' AND (? = '' OR org_id = ?)",
                (username, org_id, org_id),
            ).fetchall()
        if len(rows) != 1:
            verify_password(_DUMMY_HASH, password)  # the same time whether or not the user exists
            return None
        org_id, role, hashed = rows[0]
        return (org_id, Role(role)) if verify_password(hashed, password) else None

    def open_session(self, org_id: str, username: str, ttl_s: float, now: float | None = None) -> tuple[str, Session]:
        """A session for a user who has proved who they are; it ends after ``ttl_s`` at the latest."""
        now = now or time.time()
        session_id, csrf = new_secret(), new_secret()
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))  # expired sessions go as new ones come
            role, departments = db.execute(
                "SELECT role, departments FROM users WHERE org_id = ? AND username = ?", (org_id, username)
            ).fetchone()
            db.execute(
                "INSERT INTO sessions (id_digest, org_id, username, csrf, expires_at) VALUES (?, ?, ?, ?, ?)",
                (digest(session_id), org_id, username, csrf, now + ttl_s),
            )
        principal = Principal(org_id, username, Role(role), _departments(departments), user=username)
        return session_id, Session(principal, csrf)

    def session(self, session_id: str, now: float | None = None) -> Session | None:
        with self._lock:
            row = self._db.execute(
                "SELECT u.org_id, u.username, u.role, u.departments, s.csrf, s.expires_at FROM sessions s "
                "JOIN users u ON u.org_id = s.org_id AND u.username = s.username "
                "WHERE s.id_digest = ? AND u.disabled = 0",
                (digest(session_id),),
            ).fetchone()
        if row is None or row[5] < (now or time.time()):
            return None
        org_id, username, role, departments, csrf, _ = row
        return Session(Principal(org_id, username, Role(role), _departments(departments), user=username), csrf)

    def sessions_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM sessions").fetchone()[0])

    def sign_out(self, session_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE id_digest = ?", (digest(session_id),))

    # -- API tokens -----------------------------------------------------------------------------------------------

    def create_token(
        self, org_id: str, name: str, role: str, created_by: str, departments: tuple[str, ...] = ()
    ) -> tuple[int, str]:
        """A new token (shown once) scoped to one org and role; returns (its id, the token)."""
        role_ = _role(role)
        if not name or len(name) > 100:
            raise AccessError("name", "1 to 100 characters")
        if role_ is Role.MANAGER and not departments:
            raise AccessError("departments", "a department manager's token needs at least one department")
        token = new_token()
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO tokens (digest, org_id, name, role, departments, created_by, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (digest(token), org_id, name, role_.value, ",".join(departments), created_by, time.time()),
            )
        return int(cursor.lastrowid or 0), token

    def token(self, token: str) -> Principal | None:
        """Who the token acts for: never more than its maker may do now, and nothing once they are removed."""
        with self._lock:
            row = self._db.execute(
                "SELECT t.org_id, t.name, t.role, t.departments, t.created_by, u.role, u.departments FROM tokens t "
                "JOIN users u ON u.org_id = t.org_id AND u.username = t.created_by AND u.disabled = 0 "
                "WHERE t.digest = ? AND t.revoked_at IS NULL",
                (digest(token),),
            ).fetchone()
        if row is None:
            return None
        org_id, name, role, departments, maker, maker_role, maker_departments = row
        now = narrowed(Role(role), _departments(departments), Role(maker_role), _departments(maker_departments))
        if now is None:
            return None
        return Principal(org_id, f"token:{name}", now[0], now[1], user=maker)

    def tokens(self, org_id: str) -> list[TokenInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, role, departments, created_by, created_at, revoked_at FROM tokens "
                "WHERE org_id = ? ORDER BY id",
                (org_id,),
            ).fetchall()
        return [TokenInfo(i, n, r, _departments(d), b, c, v) for i, n, r, d, b, c, v in rows]

    def revoke_token(self, org_id: str, token_id: int) -> bool:
        with self._tx() as db:
            return (
                db.execute(
                    "UPDATE tokens SET revoked_at = ? WHERE org_id = ? AND id = ? AND revoked_at IS NULL",
                    (time.time(), org_id, token_id),
                ).rowcount
                > 0
            )

    # -- audit ----------------------------------------------------------------------------------------------------

    def audit(self, org_id: str, actor: str, action: str, target: str, before: Any, after: Any) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO audit (at, org_id, actor, action, target, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), org_id, actor, action, target, json.dumps(before), json.dumps(after)),
            )

    def audit_trail(self, org_id: str, before_id: int | None = None, limit: int = 50) -> list[AuditEntry]:
        """Newest first; ``before_id`` is the cursor (the last id of the previous page)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, actor, action, target, before, after FROM audit WHERE org_id = ? AND id < ? "
                "ORDER BY id DESC LIMIT ?",
                (org_id, before_id if before_id is not None else 2**62, limit),
            ).fetchall()
        return [AuditEntry(i, a, w, c, t, json.loads(b), json.loads(f)) for i, a, w, c, t, b, f in rows]


_DUMMY_HASH = hash_password("not a real password, only for timing")
