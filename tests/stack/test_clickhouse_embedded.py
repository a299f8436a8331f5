"""clickhouse-connect against the embedded ClickHouse: the same client code as production."""

from datetime import UTC, datetime, timedelta

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from schemas.settings import Settings
from stack.services import ClickHouseService

ROWS = 100_000
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def client(settings: Settings, database: str, **kwargs: object) -> clickhouse_connect.driver.Client:
    return clickhouse_connect.get_client(
        host=settings.clickhouse.host,
        port=settings.clickhouse.port,
        database=database,
        tz_mode="aware",
        **kwargs,
    )


@pytest.mark.stack
def test_round_trip_of_100k_rows_survives_a_restart(stack: Settings, ch_database: str) -> None:
    ch = client(stack, ch_database)
    ch.command(
        "CREATE TABLE usage (id UInt64, org LowCardinality(String), at DateTime64(6, 'UTC'), "
        "cost_nanos Int64, note Nullable(String)) ENGINE = MergeTree ORDER BY id"
    )
    rows = [
        (i, f"org{i % 7}", T0 + timedelta(seconds=i), i * 1_000 + 7, None if i % 3 else f"n{i}") for i in range(ROWS)
    ]
    summary = ch.insert("usage", rows, column_names=["id", "org", "at", "cost_nanos", "note"])
    assert summary.written_rows == ROWS

    expected_cost = sum(r[3] for r in rows)
    result = ch.query("SELECT count(), sum(cost_nanos), max(at), countIf(note IS NULL) FROM usage")
    assert result.result_rows == [(ROWS, expected_cost, T0 + timedelta(seconds=ROWS - 1), ROWS - ROWS // 3 - 1)]
    by_org = dict(ch.query("SELECT org, sum(cost_nanos) FROM usage GROUP BY org").result_rows)
    assert by_org == {f"org{k}": sum(r[3] for r in rows if r[1] == f"org{k}") for k in range(7)}
    bound = ch.query(
        "SELECT count() FROM usage WHERE org = {org:String} AND id < {n:UInt64}",
        parameters={"org": "org3", "n": 100},
    )
    assert bound.result_rows == [(sum(1 for i in range(100) if i % 7 == 3),)]
    ch.close()

    service = ClickHouseService(stack.stack)
    assert service.stop()
    assert service.start()

    again = client(stack, ch_database, compress=False)
    assert again.query("SELECT count(), sum(cost_nanos) FROM usage").result_rows == [(ROWS, expected_cost)]
    again.close()


@pytest.mark.stack
@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELEC 1", 62),  # SYNTAX_ERROR
        ("SELECT * FROM no_such_table", 60),  # UNKNOWN_TABLE
        ("SELECT no_such_function(1)", 46),  # UNKNOWN_FUNCTION
    ],
)
def test_bad_queries_answer_with_clickhouse_error_codes(stack: Settings, ch_database: str, sql: str, code: int) -> None:
    ch = client(stack, ch_database)
    with pytest.raises(DatabaseError) as info:
        ch.query(sql)
    assert f"Code: {code}." in str(info.value)
    ch.close()


@pytest.mark.stack
def test_unknown_database_is_refused(stack: Settings) -> None:
    with pytest.raises(DatabaseError, match="Code: 81"):
        client(stack, "no_such_database_anywhere").query("SELECT 1")


@pytest.mark.stack
def test_settings_apply_to_one_request_only(stack: Settings, ch_database: str) -> None:
    ch = client(stack, ch_database)
    sql = "SELECT value FROM system.settings WHERE name = 'max_threads'"
    assert ch.query(sql, settings={"max_threads": 3}).result_rows == [("3",)]
    assert ch.query(sql).result_rows != [("3",)]
    ch.close()


@pytest.mark.stack
def test_server_exposes_prometheus_metrics(stack: Settings) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{stack.clickhouse.port}/metrics") as response:
        text = response.read().decode()
    assert "spendstream_clickhouse_requests_total" in text
