"""Shared fixtures: the local stack is started once per run; each test gets its own names; ``deployment`` is an
isolated deployment of the whole pipeline (``tests/deployment.py``) for the end-to-end tests of every package."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.settings import Settings
from tests.deployment import Deployment, deployed

REPO = Path(__file__).resolve().parents[1]


def _unique(request: pytest.FixtureRequest) -> str:
    base = re.sub(r"[^A-Za-z0-9]+", "_", request.node.name)[:40].strip("_").lower()
    return f"t_{base}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """Start Kafka, Redis and the embedded ClickHouse unless they already run."""
    from stack import manager

    manager.up(settings.stack)
    return settings


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses: topic prefix, Redis key prefix, ClickHouse database."""
    return _unique(request)


@pytest.fixture
def ch_database(stack: Settings, unique_name: str) -> Iterator[str]:
    import clickhouse_connect

    admin = clickhouse_connect.get_client(host=stack.clickhouse.host, port=stack.clickhouse.port)
    admin.command(f"CREATE DATABASE {unique_name}")
    yield unique_name
    admin.command(f"DROP DATABASE IF EXISTS {unique_name}")
    admin.close()


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix of this test alone."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_client(stack: Settings, key_prefix: str) -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(stack.redis.url)
    yield client
    for key in client.scan_iter(f"{key_prefix}:*", count=10_000):
        client.delete(key)
    client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the local services (the ``stack`` fixture, directly or through another fixture) is
    marked ``stack`` whether or not its module says so: ``make unit`` (``-m "not stack"``) then runs exactly
    the tests that need no service."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def litellm_bin() -> Path:
    """The LiteLLM proxy's own virtualenv (scripts/setup-litellm): its ``litellm`` command."""
    result = subprocess.run(
        [str(REPO / "scripts" / "setup-litellm")], capture_output=True, text=True, timeout=1200, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return REPO / ".venv-litellm" / "bin" / "litellm"


@pytest.fixture
def deployment(stack: Settings) -> Iterator[Deployment]:
    with deployed(stack) as dep:
        yield dep
