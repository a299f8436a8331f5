"""The ClickHouse sink holds a batch and retries while ClickHouse cannot be reached: backpressure, no drop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import clickhouse_connect
import pytest

from schemas.events import UsageEvent
from schemas.settings import Settings
from sinks.usage_rows import usage_row
from sinks.usage_store import UsageStore

pytestmark = pytest.mark.stack


def rows(n: int) -> list[tuple[Any, ...]]:
    at = datetime(2024, 5, 17, tzinfo=UTC)
    return [
        usage_row(
            UsageEvent(
                event_id=f"e{i}",
                occurred_at=at,
                org_id="acme",
                user_id="u",
                feature="f",
                provider="openai",
                model="gpt-4o",
                input_tokens=i,
            ),
            i * 10,
            "catalogue",
            0,
            i,
        )
        for i in range(n)
    ]


def test_insert_retries_until_clickhouse_is_back_and_stores_once(stack: Settings, ch_database: str) -> None:
    attempts: list[int] = []
    dead_port = 1  # nothing listens there: the first connections fail like a ClickHouse outage

    def connect(**options: Any) -> Any:
        if len(attempts) < 3:
            return clickhouse_connect.get_client(**{**options, "port": dead_port, "connect_timeout": 1})
        return clickhouse_connect.get_client(**options)

    store = UsageStore(stack.clickhouse.host, stack.clickhouse.port, ch_database, client_factory=connect)
    UsageStore(stack.clickhouse.host, stack.clickhouse.port, ch_database).migrate()
    failures = store.insert_until_accepted(
        rows(100), "0:0-99", on_retry=lambda attempt, exc: attempts.append(attempt), max_backoff_s=0.05
    )
    assert failures == 3 and attempts == [1, 2, 3]
    assert store.count_usage() == 100
    # The same batch again (an answer lost after the server accepted it): ClickHouse drops it by its token.
    store.insert_usage(rows(100), "0:0-99")
    assert store.count_usage() == 100
    hourly = store.query(f"SELECT sum(requests), sum(cost_nanos) FROM {ch_database}.usage_hourly")
    assert hourly == [(100, sum(i * 10 for i in range(100)))]
    assert store.watermarks() == {0: 99}


def test_a_stopping_worker_gives_up_without_storing(stack: Settings, ch_database: str) -> None:
    store = UsageStore(
        stack.clickhouse.host,
        1,
        ch_database,
        client_factory=lambda **o: clickhouse_connect.get_client(**{**o, "connect_timeout": 1}),
    )
    with pytest.raises(Exception):  # noqa: B017 - whatever the client raises for a refused connection
        store.insert_until_accepted(rows(5), "t", max_backoff_s=0.01, should_stop=lambda: True)
