"""Workers killed while they store: nothing lost, nothing counted twice, no alert sent twice."""

from __future__ import annotations

import random
import signal

import pytest

from tests.faults.conftest import Faulty

pytestmark = [pytest.mark.stack, pytest.mark.faults]


def test_worker_sigkilled_three_times_while_storing(faulty: Faulty) -> None:
    dep = faulty.dep
    rng = random.Random(20261130)
    worker = dep.start_worker()
    replay = faulty.replay()
    for _ in range(3):
        # a random point while it is storing: it has consumed and stored since it started
        start = faulty.consumed()
        target = start + rng.randint(1_000, 3_000)
        dep.wait_for(lambda t=target: faulty.consumed() >= t and dep.ch_rows() > 0, 120, "storing under way")
        dep.kill_worker(worker, signal.SIGKILL)
        worker = dep.start_worker()
    replay.wait()
    faulty.conserved(replay.events)


def test_two_workers_one_sigkilled(faulty: Faulty) -> None:
    """Its partitions move to the other within the session timeout; nothing is lost or counted twice."""
    dep = faulty.dep
    first = dep.start_worker()
    second = dep.start_worker()
    replay = faulty.replay()
    dep.wait_for(lambda: dep.ch_rows() >= 5_000, 120, "both storing")
    dep.kill_worker(first, signal.SIGKILL)
    replay.wait()
    faulty.conserved(replay.events)
    assert second.poll() is None
