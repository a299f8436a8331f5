"""Sign-in rate limiting (pure): at most ``attempts`` guesses per user and address, and at most
``per_user_attempts`` per user from any address, within ``window_s``.

An attempt is counted *before* its password is checked (:meth:`SignInThrottle.begin` checks and reserves
in one call, with no ``await`` in between), so a burst of concurrent guesses cannot all be checked before
the first failure is recorded. A sign-in that succeeds gives its slot back and clears its address.

The table is bounded (``max_keys``): when full, keys whose attempts have all expired are swept first, then
the oldest keys that are not locked out. A lock-out still running is never dropped; if every key is a
running lock-out, a new key is answered as throttled until one expires. Each counted attempt costs an
argon2 check, so filling the table with lock-outs would take far more guesses than one process can check
in a window.
"""

from __future__ import annotations

import contextlib
from collections import deque

__all__ = ["ANY_ADDRESS", "SignInThrottle"]

ANY_ADDRESS = "*"  # the per-user key, whatever the address


class SignInThrottle:
    def __init__(
        self, attempts: int, window_s: float, per_user_attempts: int | None = None, max_keys: int = 100_000
    ) -> None:
        self.attempts, self.window_s, self.max_keys = attempts, window_s, max_keys
        self.per_user_attempts = per_user_attempts if per_user_attempts is not None else attempts * 4
        self._attempts: dict[tuple[str, str], deque[float]] = {}

    def begin(self, username: str, address: str, now: float) -> float:
        """0 when this sign-in may be checked now, and then its attempt is already counted; otherwise how
        long until it may (nothing is counted)."""
        keys = ((username, address), (username, ANY_ADDRESS))
        limits = (self.attempts, self.per_user_attempts)
        wait = 0.0
        for key, limit in zip(keys, limits, strict=True):
            recent = self._recent(key, now)
            if recent is not None and len(recent) >= limit:
                wait = max(wait, recent[len(recent) - limit] + self.window_s - now)
        if wait > 0:
            return wait
        for key in keys:
            if key not in self._attempts and not self._make_room(now):
                return self.window_s  # every key is a running lock-out: wait for one to expire
            self._attempts.setdefault(key, deque()).append(now)
        return 0.0

    def succeeded(self, username: str, address: str, began: float) -> None:
        """The attempt begun at ``began`` signed in: its address starts afresh, its slot is given back."""
        self._attempts.pop((username, address), None)
        mine = self._attempts.get((username, ANY_ADDRESS))
        if mine is not None:
            with contextlib.suppress(ValueError):
                mine.remove(began)
            if not mine:
                del self._attempts[(username, ANY_ADDRESS)]

    def __len__(self) -> int:
        return len(self._attempts)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        attempts = self._attempts.get(key)
        if attempts is None:
            return None
        while attempts and attempts[0] <= now - self.window_s:
            attempts.popleft()
        if not attempts:
            del self._attempts[key]
            return None
        return attempts

    def _limit(self, key: tuple[str, str]) -> int:
        return self.per_user_attempts if key[1] == ANY_ADDRESS else self.attempts

    def _make_room(self, now: float) -> bool:
        """Whether one more key fits, after sweeping expired keys and then the oldest unlocked ones."""
        if len(self._attempts) < self.max_keys:
            return True
        for key in list(self._attempts):
            self._recent(key, now)
        for key in list(self._attempts):
            if len(self._attempts) < self.max_keys:
                break
            if len(self._attempts[key]) < self._limit(key):
                del self._attempts[key]
        return len(self._attempts) < self.max_keys
