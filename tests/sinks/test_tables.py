"""One definition per table: its typed row, its columns and its DDL agree."""

from datetime import UTC, datetime
from typing import Annotated, NamedTuple

import pytest

from schemas.events import UsageEvent
from sinks.schema import migrations
from sinks.tables import TABLES, USAGE_EVENTS, Table
from sinks.usage_rows import usage_row


def test_every_row_field_is_a_column_of_its_create_in_order() -> None:
    statements = "\n".join(migrations("db"))
    for table in TABLES:
        create = table.create("db")
        assert create in statements
        positions = [create.index(f"\n    {column} ") for column in table.columns]
        assert positions == sorted(positions), table.name


class Half(NamedTuple):
    a: Annotated[int, "UInt8"]
    b: str  # no ClickHouse type


def test_every_field_of_a_row_names_its_clickhouse_type() -> None:
    with pytest.raises(ValueError, match=r"t\.b: annotate it"):
        Table("t", Half, engine="MergeTree", order_by="a")


def test_a_usage_row_is_read_by_name() -> None:
    event = UsageEvent(
        event_id="e1",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        org_id="acme",
        user_id="ada",
        feature="chat",
        provider="openai",
        model="gpt-4o",
        input_tokens=3,
    )
    row = usage_row(event, 1234, "catalogue", 2, 99)
    assert (row.cost_nanos, row.kafka_partition, row.kafka_offset, row.department_id) == (1234, 2, 99, "")
    assert USAGE_EVENTS.of(tuple(row)) == row and len(row) == len(USAGE_EVENTS.columns)
    assert USAGE_EVENTS.select("db").startswith("SELECT event_id, occurred_at, org_id")


def test_columns_added_later_reach_old_tables() -> None:
    statements = migrations("db")
    added = "ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String) DEFAULT '' AFTER api_key_id"
    assert f"ALTER TABLE db.usage_events {added}" in statements
