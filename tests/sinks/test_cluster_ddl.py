"""The DDL for a sharded, replicated ClickHouse (``clickhouse.cluster``), generated from sinks/tables.py by
the same code as one server's: golden-tested, checked for its shape, and parsed by ClickHouse itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas.settings import Settings
from sinks.schema import LOCAL, SHARD_KEYS, migrations
from sinks.tables import TABLES
from sinks.usage_store import UsageStore

GOLDEN = Path(__file__).parent / "golden" / "cluster_ddl.sql"
REGENERATE = (
    ".venv/bin/python -c \"from sinks.schema import migrations; print('\\n;\\n'.join(migrations('spendstream', "
    "'spendstream')))\" > tests/sinks/golden/cluster_ddl.sql"
)


def cluster_ddl() -> list[str]:
    return migrations("spendstream", "spendstream")


def test_the_cluster_ddl_is_the_golden_file() -> None:
    assert "\n;\n".join(cluster_ddl()) + "\n" == GOLDEN.read_text(), f"a deliberate change? regenerate: {REGENERATE}"


def test_every_table_is_replicated_on_each_shard_with_a_distributed_table_in_front() -> None:
    ddl = cluster_ddl()
    assert all(" ON CLUSTER spendstream" in statement for statement in ddl)
    for table in TABLES:
        local = next(s for s in ddl if s.startswith(f"CREATE TABLE IF NOT EXISTS spendstream.{table.name}{LOCAL} "))
        path = f"'/clickhouse/tables/{{shard}}/spendstream/{table.name}{LOCAL}', '{{replica}}'"
        assert f"ENGINE = Replicated{table.engine}({path})" in local
        assert "non_replicated" not in local  # a replicated table's dedup window is replicated_deduplication_window
        front = next(s for s in ddl if s.startswith(f"CREATE TABLE IF NOT EXISTS spendstream.{table.name} "))
        key = SHARD_KEYS.get(table.name, "cityHash64(org_id)")
        assert front.endswith(f"Distributed(spendstream, spendstream, {table.name}{LOCAL}{', ' + key if key else ''})")
        assert "PROJECTION" not in front and all(column.strip() in front for column in table.column_specs())
    views = [s for s in ddl if s.startswith("CREATE MATERIALIZED VIEW")]
    assert len(views) == 3
    for view in views:  # each shard rolls up its own events into its own rollup
        assert re.search(rf"TO spendstream\.\w+{LOCAL} AS", view) and f"FROM spendstream.usage_events{LOCAL}" in view


def test_one_server_keeps_its_ddl() -> None:
    assert not any("ON CLUSTER" in s or "Replicated" in s or "Distributed" in s for s in migrations("spendstream"))


@pytest.mark.stack
def test_clickhouse_parses_every_statement(stack: Settings) -> None:
    """The local ClickHouse has no cluster or Keeper to run them on; its parser reads each one."""
    store = UsageStore.of(stack.clickhouse)
    for statement in cluster_ddl():
        tree = store.client.raw_query(f"EXPLAIN AST {statement} FORMAT TSVRaw").decode()
        assert tree.startswith(("CreateQuery", "AlterQuery")), (statement, tree[:200])
