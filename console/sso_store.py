"""Single sign-on's records, in the console's SQLite file beside its users: each org's settings, the
sign-ins in progress, and the users provisioned from an identity provider.

A sign-in in progress (a *flow*) holds what the browser must not: the ``state`` to compare, the ``nonce``
the ID token must carry and the PKCE verifier. The browser holds only the flow's id, in a cookie; the
store keeps its digest. A flow is used once: a second callback for it (a replayed code or state) is
refused as such, and it is kept marked used until it expires so that the refusal can name its org.

A provisioned user is known by the provider's (issuer, subject), never by the email or name, which a
provider may let users change; the username is only what the console shows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from console.access_store import AccessStore, Session
from console.credentials import digest, new_secret
from console.id_tokens import SsoRefused
from console.roles import Role

__all__ = ["FLOW_TTL_S", "Flow", "Provisioned", "SsoStore"]

FLOW_TTL_S = 600  # a sign-in at the provider must come back within 10 minutes
MAX_FLOWS = 10_000  # sign-ins in progress per org: anyone may begin one, so their rows are bounded
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sso_settings (
    org_id TEXT PRIMARY KEY, body TEXT NOT NULL, updated_at REAL NOT NULL, updated_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sso_flows (
    id_digest TEXT PRIMARY KEY, org_id TEXT NOT NULL, state TEXT NOT NULL, nonce TEXT NOT NULL,
    verifier TEXT NOT NULL, next TEXT NOT NULL, created_at REAL NOT NULL, used_at REAL);
CREATE UNIQUE INDEX IF NOT EXISTS users_by_identity ON users (org_id, sso_issuer, sso_subject)
    WHERE sso_subject != '';
"""


@dataclass(frozen=True, slots=True)
class Flow:
    org_id: str
    state: str
    nonce: str
    verifier: str
    next: str


@dataclass(frozen=True, slots=True)
class Provisioned:
    session_id: str
    session: Session
    before: tuple[Role, tuple[str, ...]] | None  # the user's role before this sign-in; None: a new user


class SsoStore:
    def __init__(self, access: AccessStore) -> None:
        self.access = access
        with access.reading() as db:
            db.executescript(_SCHEMA)

    # -- settings -------------------------------------------------------------------------------------------------

    def settings(self, org_id: str) -> dict[str, Any] | None:
        with self.access.reading() as db:
            row = db.execute("SELECT body FROM sso_settings WHERE org_id = ?", (org_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save_settings(self, org_id: str, body: dict[str, Any] | None, by: str, keep: tuple[str, ...]) -> int:
        """Store (or, for None, remove) the org's settings. When they require single sign-on, the sessions
        of the org's local users other than ``keep`` (the break-glass owners) end; returns how many."""
        with self.access.transaction() as db:
            if body is None:
                db.execute("DELETE FROM sso_settings WHERE org_id = ?", (org_id,))
                return 0
            db.execute(
                "INSERT INTO sso_settings (org_id, body, updated_at, updated_by) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (org_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                (org_id, json.dumps(body, sort_keys=True), time.time(), by),
            )
            if not body.get("required"):
                return 0
            local = db.execute("SELECT username FROM users WHERE org_id = ? AND sso_subject = ''", (org_id,))
            ended = 0
            for (username,) in local.fetchall():
                if username not in keep:
                    gone = db.execute("DELETE FROM sessions WHERE org_id = ? AND username = ?", (org_id, username))
                    ended += gone.rowcount
            return ended

    # -- sign-ins in progress -------------------------------------------------------------------------------------

    def start_flow(self, flow: Flow, now: float | None = None) -> str:
        """Keep a new flow; returns its id (the browser's cookie). Raises :class:`SsoRefused` (429) while the
        org has :data:`MAX_FLOWS` in progress."""
        now = now or time.time()
        flow_id = new_secret()
        with self.access.transaction() as db:
            db.execute("DELETE FROM sso_flows WHERE created_at < ?", (now - FLOW_TTL_S,))
            (open_flows,) = db.execute("SELECT count(*) FROM sso_flows WHERE org_id = ?", (flow.org_id,)).fetchone()
            if open_flows >= MAX_FLOWS:
                busy = SsoRefused("busy", "too many sign-ins are in progress for the organisation; try again soon")
                busy.status = 429
                raise busy
            db.execute(
                "INSERT INTO sso_flows (id_digest, org_id, state, nonce, verifier, next, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (digest(flow_id), flow.org_id, flow.state, flow.nonce, flow.verifier, flow.next, now),
            )
        return flow_id

    def take_flow(self, flow_id: str, now: float | None = None) -> Flow:
        """The flow, marked used; raises :class:`SsoRefused` for none, an expired one or one used already
        (``replayed``, naming its org)."""
        now = now or time.time()
        with self.access.transaction() as db:
            row = db.execute(
                "SELECT org_id, state, nonce, verifier, next, created_at, used_at FROM sso_flows WHERE id_digest = ?",
                (digest(flow_id),),
            ).fetchone()
            if row is None or row[5] < now - FLOW_TTL_S:
                raise SsoRefused("state", "no sign-in is in progress in this browser, or it took over 10 minutes")
            if row[6] is not None:
                reason = "this sign-in was completed already: its code cannot be used again"
                raise SsoRefused("replayed", reason, org_id=row[0])
            db.execute("UPDATE sso_flows SET used_at = ? WHERE id_digest = ?", (now, digest(flow_id)))
        return Flow(*row[:5])

    # -- provisioned users ----------------------------------------------------------------------------------------

    def provision(
        self,
        org_id: str,
        issuer: str,
        subject: str,
        hint: str,
        role: Role,
        departments: tuple[str, ...],
        ttl_s: float,
    ) -> Provisioned:
        """Create the identity's user (just in time) or set its role from this sign-in, and open a session."""
        with self.access.transaction() as db:
            row = db.execute(
                "SELECT username, role, departments FROM users WHERE org_id = ? AND sso_issuer = ? AND sso_subject = ?",
                (org_id, issuer, subject),
            ).fetchone()
            if row is None:
                username = _free_name(db, org_id, hint)
                db.execute(
                    "INSERT INTO users (org_id, username, role, departments, password, created_at, sso_issuer, "
                    "sso_subject) VALUES (?, ?, ?, ?, '', ?, ?, ?)",
                    (org_id, username, role.value, ",".join(departments), time.time(), issuer, subject),
                )
                before = None
            else:
                username = row[0]
                before = (Role(row[1]), tuple(d for d in row[2].split(",") if d))
                db.execute(
                    "UPDATE users SET role = ?, departments = ? WHERE org_id = ? AND username = ?",
                    (role.value, ",".join(departments), org_id, username),
                )
        session_id, session = self.access.open_session(org_id, username, ttl_s)
        return Provisioned(session_id, session, before)

    def deprovision(self, org_id: str, issuer: str, subject: str) -> str | None:
        """Remove the identity's user, as a removed local user (sessions end, tokens revoked); its name."""
        with self.access.reading() as db:
            row = db.execute(
                "SELECT username FROM users WHERE org_id = ? AND sso_issuer = ? AND sso_subject = ?",
                (org_id, issuer, subject),
            ).fetchone()
        if row is None:
            return None
        return str(row[0]) if self.access.delete_user(org_id, row[0]) else None

    def orgs(self) -> set[str]:
        """Every org with a console user."""
        with self.access.reading() as db:
            return {str(org) for (org,) in db.execute("SELECT DISTINCT org_id FROM users")}

    def issuer_of(self, org_id: str, username: str) -> str:
        """The issuer a user signs in through; empty for a local user."""
        with self.access.reading() as db:
            row = db.execute(
                "SELECT sso_issuer FROM users WHERE org_id = ? AND username = ?", (org_id, username)
            ).fetchone()
        return str(row[0]) if row else ""


def _free_name(db: sqlite3.Connection, org_id: str, hint: str) -> str:
    """``hint``, or ``hint-2``, ``hint-3``...: a name no other user of the org holds."""
    name, n = hint, 1
    while db.execute("SELECT 1 FROM users WHERE org_id = ? AND username = ?", (org_id, name)).fetchone():
        n += 1
        name = f"{hint}-{n}"
    return name
