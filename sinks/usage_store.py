"""The ClickHouse side of usage: schema, batched inserts, watermarks.

Synchronous on purpose (``clickhouse-connect``'s client); the stream calls it
through ``asyncio.to_thread`` so an insert never blocks the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from retries.policy import Retry
from schemas.settings import ClickHouseSettings
from sinks.schema import migrations, validate_database
from sinks.tables import USAGE_EVENTS, Table, UsageRow

__all__ = ["UsageStore"]

_UNAVAILABLE = (ClickHouseError, DatabaseError, OperationalError, OSError)  # what an insert retries
log = logging.getLogger("spendstream.sinks")


class UsageStore:
    def __init__(
        self,
        host: str,
        port: int,
        database: str,
        username: str = "default",
        password: str = "",
        secure: bool = False,
        client_factory: Callable[..., Any] | None = None,
        timeout_s: float = 60,
        cluster: str = "",
    ) -> None:
        self.database = validate_database(database)
        self.cluster = cluster
        self._factory: Callable[..., Any] = client_factory or clickhouse_connect.get_client
        self._options: dict[str, Any] = dict(
            host=host,
            port=port,
            username=username,
            password=password,
            secure=secure,
            tz_mode="aware",
            compress="zstd",
            connect_timeout=5,
            send_receive_timeout=timeout_s,
            autogenerate_session_id=False,
        )
        self._client: Any = None

    @classmethod
    def of(cls, settings: ClickHouseSettings, timeout_s: float = 60) -> UsageStore:
        """A store from the ClickHouse settings (the one place that reads them); ``timeout_s``: how long a
        statement may take to answer."""
        return cls(
            settings.host,
            settings.port,
            settings.database,
            settings.username,
            settings.password.get_secret_value(),
            settings.secure,
            timeout_s=timeout_s,
            cluster=settings.cluster,
        )

    def _connect(self) -> Any:
        return self._factory(**self._options)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def reset(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                log.debug("closing a broken ClickHouse client failed", exc_info=True)
        self._client = None

    def migrate(self) -> None:
        for statement in migrations(self.database, self.cluster):
            self.client.command(statement)

    def count_usage(self) -> int:
        return int(self.client.command(f"SELECT count() FROM {self.database}.usage_events"))

    def watermarks(self) -> dict[int, int]:
        """Highest stored Kafka offset per partition of the usage topic."""
        result = self.client.query(
            f"SELECT kafka_partition, max(kafka_offset) FROM {self.database}.usage_events GROUP BY kafka_partition"
        )
        return {int(p): int(o) for p, o in result.result_rows}

    def insert_usage(self, rows: Sequence[UsageRow], token: str) -> None:
        """One insert; a retry with the same ``token`` is dropped by ClickHouse. Raises on failure."""
        self.client.insert(
            f"{self.database}.{USAGE_EVENTS.name}",
            rows,
            column_names=list(USAGE_EVENTS.columns),
            settings={
                "insert_deduplication_token": token,
                "insert_deduplicate": 1,
                "deduplicate_blocks_in_dependent_materialized_views": 1,
                # on a cluster: answer once the shard has the rows, not once they are queued to be sent there
                **({"insert_distributed_sync": 1} if self.cluster else {}),
            },
        )

    def insert_until_accepted(
        self,
        rows: Sequence[UsageRow],
        token: str,
        on_retry: Callable[[int, BaseException], None] | None = None,
        max_backoff_s: float = 5.0,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Insert, retrying with exponential backoff until ClickHouse accepts: backpressure, never a drop.

        Returns the number of failed attempts before success."""
        failures: list[int] = []

        def failed(attempt: int, exc: BaseException) -> None:
            failures.append(attempt)
            if on_retry is not None:
                on_retry(attempt, exc)
            self.reset()

        policy = Retry(_UNAVAILABLE, base_s=0.1, max_s=max_backoff_s, stop=should_stop, on_failure=failed)
        policy.call(lambda: self.insert_usage(rows, token))
        return len(failures)

    def insert(self, table: Table[Any], rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows of one table (its typed rows: the columns are the row's fields)."""
        self.client.insert(f"{self.database}.{table.name}", rows, column_names=list(table.columns))

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.client.query(sql, parameters=parameters or {}).result_rows)
