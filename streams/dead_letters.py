"""Sending a rejected record to the dead-letter topic: never lost, and never a reason to stop the stream."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bus.topics import Send, Topics
from retries.policy import Retry
from streams.metrics import WorkerMetrics
from streams.processing import DeadLetter

__all__ = ["send_dead_letter"]

log = logging.getLogger("spendstream.pipeline")


async def send_dead_letter(
    send: Send, topics: Topics, letter: DeadLetter, metrics: WorkerMetrics, stopping: Callable[[], bool]
) -> None:
    """The broker may refuse the letter itself (too large, say): then a letter that carries the reason, the
    source and the broker's error but no payload goes instead. While the broker cannot be reached at all, it
    retries: the batch is not acknowledged until every letter is on the topic."""
    headers = letter.headers(topics.usage)
    try:
        await send(topics.dlq, None, letter.payload, headers)
        return
    except Exception as exc:  # noqa: BLE001 - whatever the broker refused, a reference still goes
        log.warning("dead letter from offset %d refused (%s); sending it by reference", letter.offset, exc)
        headers = [*headers, ("spendstream-dlq-error", str(exc)[:512].encode())]

    def failed(attempt: int, exc: BaseException) -> None:
        metrics.dlq_failures.inc()
        log.warning("dead letter by reference failed (attempt %d), retrying: %s", attempt, exc)

    policy = Retry(base_s=0.1, stop=stopping, on_failure=failed)
    await policy.acall(lambda: send(topics.dlq, None, b"", headers))
