"""The console's view of ``config.v1``: the topic folded into a :class:`ConfigState`, re-read when older
than ``max_age_s`` and at once after the console itself publishes; publishing goes through
:func:`bus.config_publisher.publish_config`, the path ``budgets apply`` takes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from schemas.config_records import ConfigRecord, ConfigState

__all__ = ["ConfigCache"]

log = logging.getLogger("spendstream.console")


class ConfigCache:
    def __init__(
        self,
        read: Callable[[], ConfigState],
        publish: Callable[[Sequence[ConfigRecord]], None],
        max_age_s: float = 2.0,
    ) -> None:
        self._read, self._publish, self.max_age_s = read, publish, max_age_s
        self._state: ConfigState | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()
        self.edit_lock = threading.Lock()  # one check-then-publish at a time (If-Match)

    def state(self, fresh: bool = False) -> ConfigState:
        with self._lock:
            if fresh or self._state is None or time.monotonic() - self._read_at > self.max_age_s:
                self._state = self._read()
                self._read_at = time.monotonic()
            return self._state

    def publish(self, records: Sequence[ConfigRecord]) -> ConfigState:
        """Publish and fold the records in at once, so the next page shows them."""
        self._publish(records)
        with self._lock:
            state = self._state or self._read()
            for record in records:
                state.apply(record)
            self._state, self._read_at = state, time.monotonic()
            return state
