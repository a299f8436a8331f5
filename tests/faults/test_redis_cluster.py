"""The caps and the stream on a real Redis Cluster: three masters of Debian's redis-server, started here.

Every key of an org carries the hash tag ``{org}``, so each script call and transaction stays in one
slot. The concurrency property of the caps holds on the Cluster, and a worker SIGKILLed mid-replay
against it loses and doubles nothing."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio.cluster as aiocluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster

from schemas.settings import Settings
from tests.deployment import Deployment, free_port
from tests.enforcement.test_concurrency import caps_hold
from tests.faults.conftest import Faulty, faulty_on

pytestmark = [pytest.mark.stack, pytest.mark.faults]


def cluster_port() -> int:
    """A free port whose cluster bus (port + 10000) is a port too."""
    while True:
        port = free_port()
        if port < 55_000:
            return port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A three-master Redis Cluster on loopback; its URL (any node)."""
    server = shutil.which("redis-server") or "redis-server"
    root = tmp_path_factory.mktemp("cluster")
    ports = [cluster_port() for _ in range(3)]
    procs = []
    for port in ports:
        home = root / str(port)
        home.mkdir()
        procs.append(
            subprocess.Popen(
                [
                    *(server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"),
                    *("--cluster-config-file", str(home / "nodes.conf"), "--dir", str(home)),
                    *("--appendonly", "yes", "--save", "", "--hash-max-listpack-entries", "512"),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
    try:
        nodes = [f"127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + 20
        while True:
            made = subprocess.run(
                ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                text=True,
                check=False,
            )
            if made.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert made.returncode == 0, made.stdout + made.stderr
        client = RedisCluster(host="127.0.0.1", port=ports[0])
        while client.cluster_info().get("cluster_state") != "ok":
            assert time.monotonic() < deadline + 20, "the cluster did not come up"
            time.sleep(0.2)
        client.close()
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    user_limit=st.integers(50_000, 400_000),
    max_estimate=st.integers(1_000, 20_000),
)
def test_caps_hold_under_64_concurrent_clients_on_a_cluster(
    cluster: str, seed: int, user_limit: int, max_estimate: int
) -> None:
    client = RedisCluster.from_url(cluster)
    try:
        caps_hold(client, cluster, seed, user_limit, max_estimate, aiocluster.RedisCluster.from_url)
    finally:
        client.close()


def test_worker_sigkilled_on_a_cluster(deployment: Deployment, stack: Settings, cluster: str) -> None:
    deployment.use_redis(cluster, cluster=True)
    with faulty_on(deployment, stack) as faulty:
        run_with_a_kill(faulty)


def run_with_a_kill(faulty: Faulty) -> None:
    dep = faulty.dep
    worker = dep.start_worker()
    replay = faulty.replay()
    dep.wait_for(lambda: dep.ch_rows() >= 6_000, 120, "storing under way")
    dep.kill_worker(worker, signal.SIGKILL)
    dep.start_worker()
    replay.wait()
    faulty.conserved(replay.events)
    keys = {Path(str(key)).name for key in dep.redis().scan_iter(f"{dep.settings.redis.key_prefix}:*", count=10_000)}
    assert keys  # the state is on the Cluster
