"""Every ClickHouse table of spendstream, defined once: its typed row and its DDL. Pure: no I/O.

A :class:`Table` pairs a ``NamedTuple`` row (what code builds and reads, by field name) with the
ClickHouse type of each field, the columns ClickHouse fills itself (``DEFAULT``), its engine and its
sort key. :meth:`Table.create` writes the ``CREATE TABLE``; inserts name the row's fields as their
columns, so a row and its table cannot disagree on order. Columns added after a table's first
release are listed in ``added``: :mod:`sinks.schema` turns them into ``ALTER TABLE ... ADD COLUMN IF
NOT EXISTS``, so a table made before gains them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, NamedTuple, TypeVar

from schemas.events import UsageEvent

__all__ = [
    "ALERT_HISTORY",
    "ANOMALIES",
    "CONFIG_AUDIT",
    "FORECASTS",
    "TABLES",
    "USAGE_DAILY",
    "USAGE_EVENTS",
    "USAGE_HOURLY",
    "AlertHistoryRow",
    "AnomalyRow",
    "ConfigAuditRow",
    "ForecastRow",
    "RollupRow",
    "Table",
    "UsageRow",
    "usage_row",
]

R = TypeVar("R", bound=tuple[Any, ...])


@dataclass(frozen=True, slots=True)
class Table(Generic[R]):
    name: str
    row: type[R]
    types: dict[str, str]  # field -> ClickHouse type, for every field of ``row``
    engine: str
    order_by: str
    defaulted: tuple[str, ...] = ()  # "<column> <type> DEFAULT <expr>": filled by ClickHouse, not in the row
    partition_by: str = ""
    settings: str = ""
    added: tuple[str, ...] = ()  # fields added after the first release, in order

    def __post_init__(self) -> None:
        fields = tuple(self.row._fields)  # type: ignore[attr-defined]
        if fields != tuple(self.types):
            raise ValueError(f"{self.name}: the row's fields {fields} and the column types {tuple(self.types)} differ")

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns a row fills, in the row's order (an insert's ``column_names``)."""
        return tuple(self.types)

    def of(self, values: tuple[Any, ...]) -> R:
        """A row read back (``SELECT`` of :attr:`columns`) as the typed row."""
        return self.row._make(values)  # type: ignore[attr-defined,no-any-return]

    def select(self, database: str) -> str:
        return f"SELECT {', '.join(self.columns)} FROM {database}.{self.name}"

    def column(self, name: str) -> str:
        """``<name> <type>`` as in the ``CREATE TABLE``, for a row field or a defaulted column."""
        if name in self.types:
            return f"{name} {self.types[name]}"
        return next(spec for spec in self.defaulted if spec.split(" ", 1)[0] == name)

    def create(self, database: str) -> str:
        columns = [f"    {name} {kind}" for name, kind in self.types.items()]
        columns += [f"    {spec}" for spec in self.defaulted]
        clauses = [f"ENGINE = {self.engine}"]
        if self.partition_by:
            clauses.append(f"PARTITION BY {self.partition_by}")
        clauses.append(f"ORDER BY ({self.order_by})")
        if self.settings:
            clauses.append(f"SETTINGS {self.settings}")
        body = ",\n".join(columns)
        return f"CREATE TABLE IF NOT EXISTS {database}.{self.name} (\n{body}\n) " + "\n".join(clauses)


DEDUP_WINDOW = "non_replicated_deduplication_window = 1000"  # a retried insert (same token) is dropped


class UsageRow(NamedTuple):
    """One applied event, with its cost and where on the usage topic it came from."""

    event_id: str
    occurred_at: datetime
    org_id: str
    department_id: str
    user_id: str
    feature: str
    provider: str
    model: str
    request_id: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_nanos: int
    price_source: str
    status: str
    latency_ms: int | None
    metadata: dict[str, str]
    api_key_id: str
    service_tier: str
    kafka_partition: int
    kafka_offset: int


def usage_row(event: UsageEvent, cost_nanos: int, price_source: str, partition: int, offset: int) -> UsageRow:
    """The row of an applied event."""
    return UsageRow(
        event.event_id,
        event.occurred_at,
        event.org_id,
        event.department_id or "",
        event.user_id,
        event.feature,
        event.provider,
        event.model,
        event.request_id or "",
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.reasoning_tokens,
        cost_nanos,
        price_source,
        event.status,
        event.latency_ms,
        event.metadata,
        event.api_key_id or "",
        event.service_tier or "",
        partition,
        offset,
    )


USAGE_EVENTS: Table[UsageRow] = Table(
    "usage_events",
    UsageRow,
    {
        "event_id": "String",
        "occurred_at": "DateTime64(6, 'UTC')",
        "org_id": "LowCardinality(String)",
        "department_id": "LowCardinality(String)",
        "user_id": "String",
        "feature": "LowCardinality(String)",
        "provider": "LowCardinality(String)",
        "model": "LowCardinality(String)",
        "request_id": "String",
        "input_tokens": "UInt64",
        "output_tokens": "UInt64",
        "cache_read_tokens": "UInt64",
        "cache_write_tokens": "UInt64",
        "reasoning_tokens": "UInt64",
        "cost_nanos": "Int64",
        "price_source": "LowCardinality(String)",
        "status": "LowCardinality(String)",
        "latency_ms": "Nullable(UInt32)",
        "metadata": "Map(String, String)",
        "api_key_id": "String DEFAULT ''",
        "service_tier": "LowCardinality(String) DEFAULT ''",
        "kafka_partition": "UInt32",
        "kafka_offset": "UInt64",
    },
    engine="MergeTree",
    order_by="org_id, occurred_at, event_id",
    defaulted=("ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)",),
    settings=DEDUP_WINDOW,
    added=("api_key_id", "service_tier"),
)


class RollupRow(NamedTuple):
    """An hour's or a day's sums for one combination of the dimensions (read with ``sum()``)."""

    bucket: datetime
    org_id: str
    department_id: str
    user_id: str
    feature: str
    provider: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_nanos: int


def _rollup(name: str) -> Table[RollupRow]:
    return Table(
        name,
        RollupRow,
        {
            "bucket": "DateTime('UTC')",
            "org_id": "LowCardinality(String)",
            "department_id": "LowCardinality(String)",
            "user_id": "String",
            "feature": "LowCardinality(String)",
            "provider": "LowCardinality(String)",
            "model": "LowCardinality(String)",
            "requests": "UInt64",
            "input_tokens": "UInt64",
            "output_tokens": "UInt64",
            "cache_read_tokens": "UInt64",
            "cache_write_tokens": "UInt64",
            "reasoning_tokens": "UInt64",
            "cost_nanos": "Int64",
        },
        engine="SummingMergeTree",
        partition_by="toYYYYMM(bucket)",
        order_by="org_id, bucket, department_id, user_id, feature, provider, model",
        settings=DEDUP_WINDOW,
    )


USAGE_HOURLY = _rollup("usage_hourly")
USAGE_DAILY = _rollup("usage_daily")


class ConfigAuditRow(NamedTuple):
    key: str
    kind: str
    value: str
    deleted: int
    kafka_partition: int
    kafka_offset: int


CONFIG_AUDIT: Table[ConfigAuditRow] = Table(
    "config_audit",
    ConfigAuditRow,
    {
        "key": "String",
        "kind": "LowCardinality(String)",
        "value": "String",
        "deleted": "UInt8",
        "kafka_partition": "UInt32",
        "kafka_offset": "UInt64",
    },
    engine="ReplacingMergeTree",
    order_by="kafka_partition, kafka_offset",
    defaulted=("applied_at DateTime64(3, 'UTC') DEFAULT now64(3)",),
)


class AlertHistoryRow(NamedTuple):
    """One delivery's outcome; ``delivery_key`` gives a Redis that lost its ledger the ledger back."""

    at: datetime
    org_id: str
    dedup_key: str
    kind: str
    scope: str
    period_key: str
    stage: int
    channel: str
    channel_type: str
    target: str
    outcome: str
    attempts: int
    error: str
    detected_to_done_ms: int
    delivery_key: str


ALERT_HISTORY: Table[AlertHistoryRow] = Table(
    "alert_history",
    AlertHistoryRow,
    {
        "at": "DateTime64(3, 'UTC')",
        "org_id": "LowCardinality(String)",
        "dedup_key": "String",
        "kind": "LowCardinality(String)",
        "scope": "String",
        "period_key": "String",
        "stage": "UInt16",
        "channel": "String",
        "channel_type": "LowCardinality(String)",
        "target": "String",
        "outcome": "LowCardinality(String)",
        "attempts": "UInt16",
        "error": "String",
        "detected_to_done_ms": "UInt32",
        "delivery_key": "String DEFAULT ''",
    },
    engine="MergeTree",
    order_by="org_id, at",
    added=("delivery_key",),
)


class ForecastRow(NamedTuple):
    at: datetime
    org_id: str
    scope: str
    period: str
    period_key: str
    period_start: datetime
    period_end: datetime
    spent_nanos: int
    p10_nanos: int
    p50_nanos: int
    p90_nanos: int
    naive_nanos: int
    budget_nanos: int
    probability_over: float
    runout_date: date | None
    weekly_growth: float
    model: str


FORECASTS: Table[ForecastRow] = Table(
    "forecasts",
    ForecastRow,
    {
        "at": "DateTime64(3, 'UTC')",
        "org_id": "LowCardinality(String)",
        "scope": "String",
        "period": "LowCardinality(String)",
        "period_key": "String",
        "period_start": "DateTime('UTC')",
        "period_end": "DateTime('UTC')",
        "spent_nanos": "Int64",
        "p10_nanos": "Int64",
        "p50_nanos": "Int64",
        "p90_nanos": "Int64",
        "naive_nanos": "Int64",
        "budget_nanos": "Int64",
        "probability_over": "Float64",
        "runout_date": "Nullable(Date)",
        "weekly_growth": "Float64",
        "model": "LowCardinality(String)",
    },
    engine="MergeTree",
    partition_by="toYYYYMM(at)",
    order_by="org_id, scope, period, at",
)


class AnomalyRow(NamedTuple):
    bucket: datetime
    bucket_seconds: int
    org_id: str
    entity: str
    observed_nanos: int
    expected_nanos: int
    ratio: float
    score: float
    driver: str
    driver_share: float


ANOMALIES: Table[AnomalyRow] = Table(
    "anomalies",
    AnomalyRow,
    {
        "bucket": "DateTime('UTC')",
        "bucket_seconds": "UInt32",
        "org_id": "LowCardinality(String)",
        "entity": "String",
        "observed_nanos": "Int64",
        "expected_nanos": "Int64",
        "ratio": "Float64",
        "score": "Float64",
        "driver": "String",
        "driver_share": "Float64",
    },
    engine="ReplacingMergeTree",
    order_by="org_id, bucket_seconds, bucket, entity",
    defaulted=("detected_at DateTime64(3, 'UTC') DEFAULT now64(3)",),
)

TABLES: tuple[Table[Any], ...] = (
    USAGE_EVENTS,
    USAGE_HOURLY,
    USAGE_DAILY,
    CONFIG_AUDIT,
    ALERT_HISTORY,
    FORECASTS,
    ANOMALIES,
)
