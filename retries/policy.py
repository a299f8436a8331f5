"""How spendstream retries: one policy, one decision, a sync and an async adapter.

Every loop that must not give up on a failing dependency (Redis applies, ClickHouse inserts, the
dead-letter topic, config records and alert batches) and every bounded retry (alert deliveries) runs
through :class:`Retry`. Its pure core, :meth:`Retry.wait`, decides after each failure whether to try
again and after how long; :meth:`Retry.call` and :meth:`Retry.acall` only sleep and call.

A failure may carry two attributes the policy honours: ``retryable`` (``False``: give up at once,
say a 4xx no retry can fix) and ``retry_after`` (seconds the other side asked for, say a provider's
Retry-After, or 0 for "at once")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Retry"]

T = TypeVar("T")


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry failures of the types ``on``: ``base_s`` x 2^(n-1) after the n-th, at most ``max_s``.

    ``attempts`` bounds the tries (None: until it succeeds); ``stop`` is asked after each failure and
    ends the retrying when it says so (a worker shutting down); ``on_failure(n, exc)`` sees each
    failure before the wait (metrics, logs). When the policy gives up, the last failure is raised."""

    on: tuple[type[BaseException], ...] = (Exception,)
    base_s: float = 0.1
    max_s: float = 5.0
    attempts: int | None = None
    stop: Callable[[], bool] = _never
    on_failure: Callable[[int, BaseException], None] | None = None

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.max_s < 0:
            raise ValueError("base_s, max_s: must be >= 0")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("attempts: must be >= 1 (or None for until it succeeds)")

    def wait(self, failures: int, exc: BaseException) -> float | None:
        """Seconds to wait after the ``failures``-th failure before trying again; None to give up."""
        if not isinstance(exc, self.on) or getattr(exc, "retryable", True) is False:
            return None
        if self.attempts is not None and failures >= self.attempts:
            return None
        if self.stop():
            return None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            return min(max(float(retry_after), 0.0), self.max_s * 10)
        return float(min(self.max_s, self.base_s * 2 ** max(0, failures - 1)))

    def _failed(self, failures: int, exc: BaseException) -> float | None:
        if self.on_failure is not None and isinstance(exc, self.on):
            self.on_failure(failures, exc)
        return self.wait(failures, exc)

    def call(self, run: Callable[[], T]) -> T:
        """Run ``run`` until it succeeds or the policy gives up (blocking sleeps)."""
        failures = 0
        while True:
            try:
                return run()
            except BaseException as exc:
                failures += 1
                pause = self._failed(failures, exc)
                if pause is None:
                    raise
            time.sleep(pause)

    async def acall(self, run: Callable[[], Awaitable[T]]) -> T:
        """Await ``run()`` until it succeeds or the policy gives up (the event loop goes on meanwhile)."""
        failures = 0
        while True:
            try:
                return await run()
            except BaseException as exc:
                failures += 1
                pause = self._failed(failures, exc)
                if pause is None:
                    raise
            await asyncio.sleep(pause)
