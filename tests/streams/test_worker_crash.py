"""A worker whose agent fails exits with a failure code, promptly, and loses nothing.

The fault: Redis refuses the worker's scripts (an ACL without EVALSHA), which no retry can mend. A
usage agent that failed used to leave the process up, consuming nothing, and deaf to SIGTERM; now
the worker stops with exit code 1, so a supervisor restarts it, and a worker started with the
right credentials counts every event once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.deployment import Deployment, assert_exact, make_events

pytestmark = pytest.mark.stack


def test_a_failed_usage_agent_ends_the_worker_with_exit_code_1(deployment: Deployment) -> None:
    dep = deployment
    user, password = f"noscripts-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = dep.redis()
    admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all", "-evalsha", "-eval")
    try:
        url = dep.settings.redis.url.replace("redis://", f"redis://{user}:{password}@")
        dep.env["SPENDSTREAM_REDIS__URL"] = url
        crashing = dep.start_worker()
        now = datetime.now(UTC)
        events = make_events(500, now, "crash")
        dep.send(events)
        assert crashing.wait(timeout=60) == 1  # stopped by itself, with a failure code
        assert dep.ch_rows() in (0, -1)  # nothing was counted, so nothing may be committed

        dep.env["SPENDSTREAM_REDIS__URL"] = dep.settings.redis.url
        dep.start_worker()
        dep.wait_for(lambda: dep.ch_rows() == len(events), 120, "the restarted worker counting every event")
        assert_exact(dep, events)
    finally:
        admin.execute_command("ACL", "DELUSER", user)
