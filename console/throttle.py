"""Sign-in rate limiting (pure): at most ``attempts`` failures per user and address within ``window_s``."""

from __future__ import annotations

from collections import deque

__all__ = ["SignInThrottle"]


class SignInThrottle:
    def __init__(self, attempts: int, window_s: float, max_keys: int = 100_000) -> None:
        self.attempts, self.window_s, self.max_keys = attempts, window_s, max_keys
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def wait_s(self, username: str, address: str, now: float) -> float:
        """0 when a sign-in may be tried now; otherwise how long until it may."""
        failures = self._recent((username, address), now)
        if len(failures) < self.attempts:
            return 0.0
        return failures[0] + self.window_s - now

    def failed(self, username: str, address: str, now: float) -> None:
        if len(self._failures) >= self.max_keys:  # a flood of names: forget the oldest half, keep answering
            for key in list(self._failures)[: self.max_keys // 2]:
                del self._failures[key]
        self._recent((username, address), now).append(now)

    def succeeded(self, username: str, address: str) -> None:
        self._failures.pop((username, address), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures
