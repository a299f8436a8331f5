"""The rollups keep each event's cost by token type: the sums equal the raw events' split to the nano-USD, and
a database made by a release before the split gains the columns without missing an insert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import UsageEvent
from schemas.price_sources import load_overrides
from schemas.pricing import rate
from schemas.settings import Settings
from sinks import label_queries, queries
from sinks.schema import SUMS
from sinks.tables import TYPE_COSTS
from sinks.usage_rows import usage_row
from sinks.usage_store import UsageStore
from tests.deployment import PRICES

pytestmark = pytest.mark.stack

AT = datetime(2026, 11, 3, 9, tzinfo=UTC)
ROLLUPS = ("usage_hourly", "usage_daily", "usage_labels_hourly")


def _rows(first: int, count: int, split: bool) -> list[tuple[object, ...]]:
    catalogue = load_overrides(PRICES)
    rows = []
    for i in range(first, first + count):
        event = UsageEvent(
            event_id=f"e{i}",
            occurred_at=AT + timedelta(minutes=i),
            org_id="acme",
            department_id="eng",
            user_id=f"u{i % 3}",
            feature="chat",
            provider="openai",
            model="gpt-4o",
            input_tokens=1_000 + 7 * i,
            output_tokens=333 + i,
            cache_read_tokens=50 * (i % 4),
            api_key_id="k1",
        )
        rating = rate(event, catalogue)
        if split:
            rows.append(usage_row(event, rating.cost_nanos, "catalogue", 0, i, rating.list_nanos, rating.split))
        else:  # as stored before the split was kept, or priced by the proxy
            rows.append(usage_row(event, rating.cost_nanos, "catalogue", 0, i))
    return rows


def _type_sums(store: UsageStore, table: str) -> list[int]:
    sums = ", ".join(f"sum({c})" for c in ("cost_nanos", *TYPE_COSTS))
    where = "label = 'api_key'" if table == "usage_labels_hourly" else "1"
    return [int(v) for v in store.query(f"SELECT {sums} FROM {store.database}.{table} WHERE {where}")[0]]


def test_an_older_database_gains_the_split_and_the_sums_stay_exact(stack: Settings, ch_database: str) -> None:
    store = UsageStore(stack.clickhouse.host, stack.clickhouse.port, ch_database)
    store.migrate()
    db = ch_database
    for table in ROLLUPS[:2]:  # back to the rollups of the release before: no type columns, the old views
        sums = ", ".join(["count() AS requests", *(f"sum({c}) AS {c}" for c in SUMS if c != "requests")])
        bucket = (
            "toStartOfHour(occurred_at)" if table == "usage_hourly" else "toDateTime(toStartOfDay(occurred_at), 'UTC')"
        )
        dims = "org_id, department_id, user_id, feature, provider, model"
        store.query(
            f"ALTER TABLE {db}.{table}_mv MODIFY QUERY SELECT {bucket} AS bucket, {dims}, {sums} "
            f"FROM {db}.usage_events GROUP BY bucket, {dims}"
        )
        for column in TYPE_COSTS:
            store.query(f"ALTER TABLE {db}.{table} DROP COLUMN {column}")
    store.insert_usage(_rows(0, 40, split=False), "old")
    store.migrate()  # the upgrade: columns added, the views' queries swapped in place
    store.insert_usage(_rows(40, 60, split=True), "new")
    raw = [
        int(v)
        for v in store.query(
            "SELECT sum(cost_nanos), "
            + ", ".join(f"sum(cost_by_type_nanos[{i}])" for i in range(1, 6))
            + f" FROM {db}.usage_events"
        )[0]
    ]
    new_only = int(
        store.query(f"SELECT sum(cost_nanos) FROM {db}.usage_events WHERE event_id >= 'e40' AND length(event_id) = 3")[
            0
        ][0]
    )
    assert sum(raw[1:]) == new_only > 0  # the split events' parts add up to their costs; the old ones have none
    for table in ROLLUPS:
        assert _type_sums(store, table) == raw, table
    rows = store.query(*queries.spend_by(db, "model", "acme", AT, AT + timedelta(days=1)))
    (row,) = rows
    assert [int(v) for v in row[7:13]] == raw  # the cost, then each type's: what the console reads
    assert raw[4] == raw[5] == 0  # no cache writes or reasoning tokens in these events


def test_a_grouping_by_label_reads_the_value_projection_which_an_older_rollup_gains(
    stack: Settings, ch_database: str
) -> None:
    store = UsageStore(stack.clickhouse.host, stack.clickhouse.port, ch_database)
    store.migrate()
    db = ch_database
    store.query(f"ALTER TABLE {db}.usage_labels_hourly DROP PROJECTION by_value")  # as made before it
    store.insert_usage(_rows(0, 40, split=True), "old")
    store.migrate()
    store.insert_usage(_rows(40, 60, split=True), "new")
    query = label_queries.spend_by_label(db, "api_key", "acme", AT, AT + timedelta(days=1))
    plan = "\n".join(str(row[0]) for row in store.query("EXPLAIN " + query[0], query[1]))
    assert "by_value" in plan  # the parts made after the upgrade; the older part is read from the table
    ((key, *sums),) = store.query(*query)
    raw = store.query(f"SELECT count(), sum(cost_nanos) FROM {db}.usage_events")[0]
    assert key == "k1" and (sums[0], sums[6]) == (raw[0], raw[1])
    store.query(f"OPTIMIZE TABLE {db}.usage_labels_hourly FINAL")  # a merge gives the old part the projection
    assert store.query(*query)[0][1:] == (key, *sums)[1:]
