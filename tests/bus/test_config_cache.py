"""The console's config cache: what the console publishes stays visible, even when its follower thread
read the topic from before the publish and finished after it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from bus.config_topic import ConfigCache
from schemas.config_records import ConfigRecord, ConfigState

ROUTING = ConfigRecord("routing/acme", b'{"default": ["ops"]}')


def test_a_follower_read_that_began_before_a_publish_does_not_hide_it() -> None:
    topic: list[ConfigRecord] = []
    reading, publish_done, finished = threading.Event(), threading.Event(), threading.Event()
    reads = 0

    def read() -> ConfigState:
        nonlocal reads
        reads += 1
        state = ConfigState()
        for record in list(topic):  # what the topic held when the read began
            state.apply(record)
        if reads == 2:  # the follower's first read: it lasts past the console's publish
            reading.set()
            publish_done.wait(5)
        elif reads > 2:  # the follower's next read waits for the test's end: the first one is what it kept
            finished.wait(5)
        return state

    def publish(records: Sequence[ConfigRecord]) -> None:
        topic.extend(records)

    cache = ConfigCache(read, publish, max_age_s=0.05)
    assert cache.state().routing == {}
    cache.follow()
    assert reading.wait(5)
    cache.publish([ROUTING])
    assert "acme" in cache.state().routing
    publish_done.set()
    deadline = time.monotonic() + 5
    while reads < 3 and time.monotonic() < deadline:  # the follower is done with its stale read
        time.sleep(0.01)
    assert reads == 3
    assert "acme" in cache.state().routing
    finished.set()


def test_a_follower_with_nothing_read_reads_at_once_not_after_its_period() -> None:
    """The LiteLLM hook follows every 60 s: its first tags must not wait that long."""
    read_once = threading.Event()
    seen: list[ConfigState] = []

    def read() -> ConfigState:
        read_once.set()
        return ConfigState()

    cache = ConfigCache(read, None, max_age_s=3600)
    cache.follow(on_read=seen.append)
    try:
        assert read_once.wait(5) and _eventually(lambda: len(seen) == 1)
    finally:
        cache.stop()


def _eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 5
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()
