"""Clients built from settings: the one place every process gets its Redis and ClickHouse clients."""

from __future__ import annotations

from typing import Any

from enforcement.connect import redis_async, redis_sync
from schemas.settings import RedisSettings

__all__ = ["async_redis", "sync_redis"]


def _password(settings: RedisSettings) -> str | None:
    return settings.password.get_secret_value() if settings.password else None


def sync_redis(settings: RedisSettings, **options: Any) -> Any:
    """A ``redis.Redis`` (or ``RedisCluster``) for these settings."""
    return redis_sync(settings.url, password=_password(settings), cluster=settings.cluster, **options)


def async_redis(settings: RedisSettings, **options: Any) -> Any:
    """A ``redis.asyncio.Redis`` (or its ``RedisCluster``) for these settings."""
    return redis_async(settings.url, password=_password(settings), cluster=settings.cluster, **options)
