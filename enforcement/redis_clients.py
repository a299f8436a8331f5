"""Redis clients, standalone or Cluster, sync or async: the one place that makes them, from a URL (a proxy
that installs ``enforcement`` alone) or from the settings' ``redis`` section (every program).

Every key of an org carries the hash tag ``{org}``, so one org's keys, and so every script call and
transaction about it, live in one Cluster slot. With ``cluster=True`` the URL names any node of a
Redis Cluster; the clients route each command by its key.
"""

from __future__ import annotations

from typing import Any, Protocol

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
from redis.cluster import RedisCluster

__all__ = [
    "RedisConnection",
    "all_nodes",
    "async_redis",
    "is_cluster",
    "redis_async",
    "redis_sync",
    "run_id",
    "sync_redis",
]


class RedisConnection(Protocol):
    """Where Redis is: ``schemas.settings.RedisSettings`` (a Protocol, so enforcement needs no settings library)."""

    @property
    def url(self) -> str: ...

    @property
    def cluster(self) -> bool: ...

    def password_text(self) -> str | None: ...


def redis_sync(url: str, *, password: str | None = None, cluster: bool = False, **options: Any) -> Any:
    if cluster:
        return RedisCluster.from_url(url, password=password, **options)
    return redis.Redis.from_url(url, password=password, **options)


def redis_async(url: str, *, password: str | None = None, cluster: bool = False, **options: Any) -> Any:
    if cluster:
        return aiocluster.RedisCluster.from_url(url, password=password, **options)
    return aioredis.Redis.from_url(url, password=password, **options)


def sync_redis(settings: RedisConnection, **options: Any) -> Any:
    """A ``redis.Redis`` (or ``RedisCluster``) for these settings."""
    return redis_sync(settings.url, password=settings.password_text(), cluster=settings.cluster, **options)


def async_redis(settings: RedisConnection, **options: Any) -> Any:
    """A ``redis.asyncio.Redis`` (or its ``RedisCluster``) for these settings."""
    return redis_async(settings.url, password=settings.password_text(), cluster=settings.cluster, **options)


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster | aiocluster.RedisCluster)


def all_nodes(client: Any) -> dict[str, Any]:
    """The keyword that makes a Cluster client ask every node (``INFO``); nothing for a standalone one."""
    return {"target_nodes": client.ALL_NODES} if is_cluster(client) else {}


def run_id(info: Any) -> str:
    """Who is serving: the ``run_id`` of a Redis process, or of every node of a Cluster (sorted, joined),
    from what ``INFO server`` answered. Any node restarted changes it."""
    if isinstance(info, dict) and "run_id" in info:
        return str(info["run_id"])
    ids = sorted(str(node["run_id"]) for node in info.values() if isinstance(node, dict) and "run_id" in node)
    return ",".join(ids)
