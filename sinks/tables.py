"""Every ClickHouse table of spendstream, defined once: its typed row and its DDL. Pure: no I/O.

A :class:`Table` pairs a ``NamedTuple`` row (what code builds and reads, by field name; each field
annotated with its ClickHouse type) with the columns ClickHouse fills itself (``DEFAULT``), its engine
and its sort key. :meth:`Table.create` writes the ``CREATE TABLE``; inserts name the row's fields as their
columns, so a row and its table cannot disagree on order. Columns added after a table's first
release are listed in ``added``: :mod:`sinks.schema` turns them into ``ALTER TABLE ... ADD COLUMN IF
NOT EXISTS``, so a table made before gains them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, NamedTuple, TypeVar, get_type_hints

from schemas.pricing import TOKEN_TYPES

__all__ = [
    "ALERT_HISTORY", "ANOMALIES", "CONFIG_AUDIT", "FORECASTS", "REPORT_FILES", "REPORT_RUNS", "TABLES",
    "USAGE_DAILY", "USAGE_EVENTS", "USAGE_HOURLY", "AlertHistoryRow", "AnomalyRow", "ConfigAuditRow", "ForecastRow",
    "ReportFileRow", "ReportRunRow", "RollupRow", "Table", "UsageRow",
]  # fmt: skip

R = TypeVar("R", bound=tuple[Any, ...])


@dataclass(frozen=True, slots=True)
class Table(Generic[R]):
    name: str
    row: type[R]  # a NamedTuple whose every field is ``Annotated[<python type>, "<ClickHouse type>"]``
    engine: str
    order_by: str
    defaulted: tuple[str, ...] = ()  # "<column> <type> DEFAULT <expr>": filled by ClickHouse, not in the row
    partition_by: str = ""
    settings: str = ""
    added: tuple[str, ...] = ()  # fields added after the first release, in order
    projections: tuple[str, ...] = ()  # "<name> (SELECT ...)": ClickHouse answers a matching query from one
    types: dict[str, str] = field(init=False)  # field -> ClickHouse type, in the row's order

    def __post_init__(self) -> None:
        types = {}
        for name, hint in get_type_hints(self.row, include_extras=True).items():
            kinds = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, str)]
            if len(kinds) != 1:
                raise ValueError(f'{self.name}.{name}: annotate it as Annotated[<type>, "<ClickHouse type>"]')
            types[name] = kinds[0]
        object.__setattr__(self, "types", types)

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

    def column_specs(self) -> list[str]:
        """The columns of the ``CREATE TABLE``: the row's, then those ClickHouse fills."""
        return [*(f"    {name} {kind}" for name, kind in self.types.items()), *(f"    {s}" for s in self.defaulted)]

    def create(self, database: str, cluster: str = "", stored_as: str = "") -> str:
        """The ``CREATE TABLE``; on a cluster (``cluster``), the shard's replicated table of this name with
        ``stored_as`` appended (``usage_events_local``), its replicas kept by ClickHouse Keeper."""
        columns = [*self.column_specs(), *(f"    PROJECTION {spec}" for spec in self.projections)]
        name, engine, settings = self.name, self.engine, self.settings
        if cluster:
            name += stored_as
            engine = f"Replicated{engine}('/clickhouse/tables/{{shard}}/{database}/{name}', '{{replica}}')"
            settings = settings.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
        clauses = [f"ENGINE = {engine}"]
        if self.partition_by:
            clauses.append(f"PARTITION BY {self.partition_by}")
        clauses.append(f"ORDER BY ({self.order_by})")
        if settings:
            clauses.append(f"SETTINGS {settings}")
        body = ",\n".join(columns)
        on = f" ON CLUSTER {cluster}" if cluster else ""
        return f"CREATE TABLE IF NOT EXISTS {database}.{name}{on} (\n{body}\n) " + "\n".join(clauses)


# ClickHouse column types, by what they hold
Text = Annotated[str, "String"]
Label = Annotated[str, "LowCardinality(String)"]  # few distinct values: dictionary-encoded
Nanos = Annotated[int, "Int64"]  # money, in nano-USD
Count = Annotated[int, "UInt64"]  # tokens, requests, Kafka offsets
UInt32 = Annotated[int, "UInt32"]
UInt16 = Annotated[int, "UInt16"]
Real = Annotated[float, "Float64"]
Millis = Annotated[datetime, "DateTime64(3, 'UTC')"]
Seconds = Annotated[datetime, "DateTime('UTC')"]
TypeCost = Annotated[int, "Int64 DEFAULT 0"]  # a rollup's cost of one token type, in nano-USD
TYPE_COSTS = tuple(f"{kind}_cost_nanos" for kind in TOKEN_TYPES)  # in the order of cost_by_type_nanos

DEDUP_WINDOW = "non_replicated_deduplication_window = 1000"  # a retried insert (same token) is dropped


class UsageRow(NamedTuple):
    """One applied event, with its cost and where on the usage topic it came from."""

    event_id: Text
    occurred_at: Annotated[datetime, "DateTime64(6, 'UTC')"]
    org_id: Label
    department_id: Label
    user_id: Text
    feature: Label
    provider: Label
    model: Label
    request_id: Text
    input_tokens: Count
    output_tokens: Count
    cache_read_tokens: Count
    cache_write_tokens: Count
    reasoning_tokens: Count
    cost_nanos: Nanos
    price_source: Label
    status: Label
    latency_ms: Annotated[int | None, "Nullable(UInt32)"]
    metadata: Annotated[dict[str, str], "Map(String, String)"]
    api_key_id: Annotated[str, "String DEFAULT ''"]
    service_tier: Annotated[str, "LowCardinality(String) DEFAULT ''"]
    # the rating's detail (rows stored before it was kept read as undiscounted and unsplit):
    list_cost_nanos: Annotated[int, "Int64 DEFAULT cost_nanos"]  # before the org's discount
    cost_by_type_nanos: Annotated[list[int], "Array(Int64) DEFAULT []"]  # by TOKEN_TYPES; [] when unsplit
    usd_per_token: Annotated[list[Decimal], "Array(Decimal(38, 18)) DEFAULT []"]  # the prices that applied
    discount: Annotated[Decimal, "Decimal(18, 9) DEFAULT 0"]  # the org's fraction off
    # the org's declared allocation tags when the event was stored, each with its value or its missing value:
    tags: Annotated[dict[str, str], "Map(LowCardinality(String), String) DEFAULT map()"]
    kafka_partition: UInt32
    kafka_offset: Count


USAGE_EVENTS: Table[UsageRow] = Table(
    "usage_events",
    UsageRow,
    engine="MergeTree",
    order_by="org_id, occurred_at, event_id",
    defaulted=("ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)",),
    settings=DEDUP_WINDOW,
    added=(
        "api_key_id",
        "service_tier",
        "list_cost_nanos",
        "cost_by_type_nanos",
        "usd_per_token",
        "discount",
        "tags",
    ),
)


class RollupRow(NamedTuple):
    """An hour's or a day's sums for one combination of the dimensions (read with ``sum()``)."""

    bucket: Seconds
    org_id: Label
    department_id: Label
    user_id: Text
    feature: Label
    provider: Label
    model: Label
    requests: Count
    input_tokens: Count
    output_tokens: Count
    cache_read_tokens: Count
    cache_write_tokens: Count
    reasoning_tokens: Count
    cost_nanos: Nanos
    # the cost by token type (rows rated before the split was kept, and costs a proxy reported, count in none):
    input_cost_nanos: TypeCost
    output_cost_nanos: TypeCost
    cache_read_cost_nanos: TypeCost
    cache_write_cost_nanos: TypeCost
    reasoning_cost_nanos: TypeCost


def _rollup(name: str) -> Table[RollupRow]:
    return Table(
        name,
        RollupRow,
        engine="SummingMergeTree",
        partition_by="toYYYYMM(bucket)",
        order_by="org_id, bucket, department_id, user_id, feature, provider, model",
        settings=DEDUP_WINDOW,
        added=TYPE_COSTS,
    )


USAGE_HOURLY = _rollup("usage_hourly")
USAGE_DAILY = _rollup("usage_daily")


class LabelRollupRow(NamedTuple):
    """An hour's sums for one value of one label (``tag:<key>`` for a declared tag, ``api_key`` for the key
    that made the requests) and one combination of the dimensions: an event counts once under every label."""

    bucket: Seconds
    org_id: Label
    label: Label
    value: Text
    department_id: Label
    user_id: Text
    feature: Label
    provider: Label
    model: Label
    requests: Count
    input_tokens: Count
    output_tokens: Count
    cache_read_tokens: Count
    cache_write_tokens: Count
    reasoning_tokens: Count
    cost_nanos: Nanos
    input_cost_nanos: TypeCost
    output_cost_nanos: TypeCost
    cache_read_cost_nanos: TypeCost
    cache_write_cost_nanos: TypeCost
    reasoning_cost_nanos: TypeCost


_LABEL_SUMS = LabelRollupRow._fields[LabelRollupRow._fields.index("requests") :]
USAGE_LABELS_HOURLY: Table[LabelRollupRow] = Table(
    "usage_labels_hourly",
    LabelRollupRow,
    engine="SummingMergeTree",
    partition_by="toYYYYMM(bucket)",
    order_by="org_id, label, bucket, value, department_id, user_id, feature, provider, model",
    settings=DEDUP_WINDOW + ", deduplicate_merge_projection_mode = 'rebuild'",
    # Each value's hourly sums, whatever the dimensions: a view grouped by a tag (or narrowed to a value) and
    # not by a dimension reads a row an hour and value from here, fewer rows than a grouping by department.
    projections=(
        "by_value (SELECT org_id, label, bucket, value, "
        + ", ".join(f"sum({c})" for c in _LABEL_SUMS)
        + " GROUP BY org_id, label, bucket, value)",
    ),
)


class ConfigAuditRow(NamedTuple):
    key: Text
    kind: Label
    value: Text
    deleted: Annotated[int, "UInt8"]
    kafka_partition: UInt32
    kafka_offset: Count


CONFIG_AUDIT: Table[ConfigAuditRow] = Table(
    "config_audit",
    ConfigAuditRow,
    engine="ReplacingMergeTree",
    order_by="kafka_partition, kafka_offset",
    defaulted=("applied_at DateTime64(3, 'UTC') DEFAULT now64(3)",),
)


class AlertHistoryRow(NamedTuple):
    """One delivery's outcome; ``delivery_key`` gives a Redis that lost its ledger the ledger back."""

    at: Millis
    org_id: Label
    dedup_key: Text
    kind: Label
    scope: Text
    period_key: Text
    stage: UInt16
    channel: Text
    channel_type: Label
    target: Text
    outcome: Label
    attempts: UInt16
    error: Text
    detected_to_done_ms: UInt32
    delivery_key: Annotated[str, "String DEFAULT ''"]


ALERT_HISTORY: Table[AlertHistoryRow] = Table(
    "alert_history",
    AlertHistoryRow,
    engine="MergeTree",
    order_by="org_id, at",
    added=("delivery_key",),
)


class ForecastRow(NamedTuple):
    at: Millis
    org_id: Label
    scope: Text
    period: Label
    period_key: Text
    period_start: Seconds
    period_end: Seconds
    spent_nanos: Nanos
    p10_nanos: Nanos
    p50_nanos: Nanos
    p90_nanos: Nanos
    naive_nanos: Nanos
    budget_nanos: Nanos
    probability_over: Real
    runout_date: Annotated[date | None, "Nullable(Date)"]
    weekly_growth: Real
    model: Label


FORECASTS: Table[ForecastRow] = Table(
    "forecasts",
    ForecastRow,
    engine="MergeTree",
    partition_by="toYYYYMM(at)",
    order_by="org_id, scope, period, at",
)


class AnomalyRow(NamedTuple):
    bucket: Seconds
    bucket_seconds: UInt32
    org_id: Label
    entity: Text
    observed_nanos: Nanos
    expected_nanos: Nanos
    ratio: Real
    score: Real
    driver: Text
    driver_share: Real


ANOMALIES: Table[AnomalyRow] = Table(
    "anomalies",
    AnomalyRow,
    engine="ReplacingMergeTree",
    order_by="org_id, bucket_seconds, bucket, entity",
    defaulted=("detected_at DateTime64(3, 'UTC') DEFAULT now64(3)",),
)


class ReportRunRow(NamedTuple):
    """One attempt at a scheduled (or on-demand) report run: its outcome, files and recipients."""

    run_id: Text
    org_id: Label
    template: Text
    due_at: Seconds  # the scheduled time it ran for; with the template, what makes a run unique
    period: Text  # what it covered: YYYY-MM, or first..last
    attempt: UInt16
    outcome: Label  # sent | rendered | failed
    error: Text
    files: Annotated[list[str], "Array(String)"]
    recipients: Annotated[list[str], "Array(String)"]
    worker: Text
    started_at: Millis
    finished_at: Millis


REPORT_RUNS: Table[ReportRunRow] = Table(
    "report_runs", ReportRunRow, engine="MergeTree", order_by="org_id, template, due_at, attempt"
)


class ReportFileRow(NamedTuple):
    """A file a run made, kept so that it can be downloaded again from any console."""

    run_id: Text
    org_id: Label
    name: Text
    content: Annotated[bytes, "String CODEC(ZSTD(3))"]


REPORT_FILES: Table[ReportFileRow] = Table(
    "report_files", ReportFileRow, engine="ReplacingMergeTree", order_by="org_id, run_id, name"
)

TABLES: tuple[Table[Any], ...] = (
    USAGE_EVENTS,
    USAGE_HOURLY,
    USAGE_DAILY,
    CONFIG_AUDIT,
    ALERT_HISTORY,
    FORECASTS,
    ANOMALIES,
    REPORT_RUNS,
    REPORT_FILES,
)
