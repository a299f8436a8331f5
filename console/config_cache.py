"""The console's view of ``config.v1``: the topic folded into a :class:`ConfigState`, re-read every
``max_age_s`` by a thread of its own (a page never waits for Kafka, except the first and an edit, which
reads it fresh), and folded in at once after the console itself publishes. Publishing goes through
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
        self._following = False
        self._published = 0  # how many publishes so far: a follower's read begun before one is dropped
        self.edit_lock = threading.Lock()  # one check-then-publish at a time (If-Match)

    def state(self, fresh: bool = False) -> ConfigState:
        """The config; ``fresh``: read from the topic now. Without a follower, re-read once it is stale."""
        with self._lock:
            stale = not self._following and time.monotonic() - self._read_at > self.max_age_s
            if fresh or self._state is None or stale:
                self._state = self._read()
                self._read_at = time.monotonic()
            return self._state

    def follow(self) -> None:
        """Re-read the topic every ``max_age_s`` in a daemon thread, so pages serve what is cached."""
        self._following = True
        threading.Thread(target=self._follow, name="config-follower", daemon=True).start()

    def _follow(self) -> None:
        while True:
            time.sleep(self.max_age_s)
            with self._lock:
                published = self._published
            try:
                state = self._read()
            except Exception:
                log.warning("reading config.v1 failed; the console keeps the last config it read", exc_info=True)
                continue
            with self._lock:
                # A publish while reading was folded in already and the read may have missed it: keep that.
                if self._published == published:
                    self._state, self._read_at = state, time.monotonic()

    def publish(self, records: Sequence[ConfigRecord]) -> ConfigState:
        """Publish and fold the records in at once, so the next page shows them."""
        self._publish(records)
        with self._lock:
            self._published += 1
            state = self._state or self._read()
            for record in records:
                state.apply(record)
            self._state, self._read_at = state, time.monotonic()
            return state
