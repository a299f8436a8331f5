"""Which partitions of the usage topic this worker owns, across rebalances.

Faust gathers a batch (``take_events``) in a buffer that a rebalance does not clear: a batch can reach the
agent after its partitions moved to another worker, which reads them again from the committed offset. Its
events of a partition now another's are left to that owner; and from a revoke until the next assignment's
watermarks are loaded, no batch is taken (Faust resumes the stream meanwhile)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

from streams.processing import Message

__all__ = ["Ownership"]


class Ownership:
    def __init__(self) -> None:
        self.owned: frozenset[int] | None = None  # None: every partition (no assignment said otherwise)
        self._known = asyncio.Event()
        self._known.set()

    def revoked(self) -> None:
        self._known.clear()

    def assigned(self, owned: Collection[int] | None) -> None:
        self.owned = None if owned is None else frozenset(owned)
        self._known.set()

    async def known(self) -> None:
        """Until the assignment after a revoke is known."""
        await self._known.wait()

    def keep(self, messages: Sequence[Message], acks: Sequence[Any]) -> tuple[Sequence[Message], Sequence[Any]]:
        """The messages of owned partitions, with their acks when there is one a message (else all acks)."""
        owned = self.owned
        if owned is None or all(m.partition in owned for m in messages):
            return messages, acks
        keep = [i for i, m in enumerate(messages) if m.partition in owned]
        if len(acks) == len(messages):
            acks = [acks[i] for i in keep]
        return [messages[i] for i in keep], acks
