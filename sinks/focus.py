"""The FOCUS export (FinOps Open Cost and Usage Specification 1.2, and 1.0 for tools that know no newer
one): one row per charge, that is per usage event, built and formatted by ClickHouse itself, so that a
million rows stream out at close to ClickHouse's own speed without passing through Python objects.

Rows come in the export's order, ``(ingested_at, event_id)``: when ClickHouse stored them, so a late
event (one that happened long ago) comes after everything exported before it arrived. A page ends at
a position that rows older than ``settle_s`` bound, so a row still being inserted cannot be skipped.

A row's billing period is the month (in the org's zone) it happened in, unless finance closed that
month at an earlier position: then it is billed to the first later month that was not closed before
it, with ``ChargeClass = 'Correction'``, and the rows exported for the closed month never change.

Money is exact: ``BilledCost`` and the other costs are the nano-USD as a decimal with nine places,
and ``x_CostNanos`` is the integer. In CSV, text that a spreadsheet would run as a formula is
prefixed with an apostrophe; JSON lines carry text as is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from schemas.focus_export import EXPORT_START, ExportPosition, PeriodClose

__all__ = ["COLUMNS", "FOCUS_VERSIONS", "FocusColumn", "focus_query", "focus_rows", "page_end", "settled_end"]

FOCUS_VERSIONS = ("1.2", "1.0")
_ISO = "'%Y-%m-%dT%H:%i:%SZ'"
_COST = "toDecimal128(cost_nanos, 9) / 1000000000"
_MONTH = "toStartOfMonth(occurred_at, {tz:String})"  # the month it happened in, a Date
_NULL = "CAST(NULL AS Nullable(String))"


@dataclass(frozen=True, slots=True)
class FocusColumn:
    name: str
    focus_type: str  # Decimal, String, Date/Time, JSON: the spec's data type
    sql: str
    versions: tuple[str, ...] = FOCUS_VERSIONS
    text: bool = False  # free text: guarded against formula injection in CSV
    name_1_0: str = ""  # its name in FOCUS 1.0, when 1.2 renamed it


def _period(month: str, offset: int = 0) -> str:
    return f"formatDateTime(toDateTime(addMonths({month}, {offset}), {{tz:String}}), {_ISO}, 'UTC')"


COLUMNS: tuple[FocusColumn, ...] = (
    FocusColumn("BilledCost", "Decimal", _COST),
    FocusColumn("BillingAccountId", "String", "org_id"),
    FocusColumn("BillingAccountName", "String", "org_id"),
    FocusColumn("BillingCurrency", "String", "'USD'"),
    FocusColumn("BillingPeriodStart", "Date/Time", _period("billing_month")),
    FocusColumn("BillingPeriodEnd", "Date/Time", _period("billing_month", 1)),
    FocusColumn("ChargeCategory", "String", "'Usage'"),
    FocusColumn("ChargeClass", "String", "if(billing_month = usage_month, NULL, 'Correction')"),
    FocusColumn(
        "ChargeDescription",
        "String",
        "concat(model, ' via ', provider, ': ', toString(input_tokens + cache_read_tokens + cache_write_tokens), "
        "' input and ', toString(output_tokens + reasoning_tokens), ' output tokens')",
        text=True,
    ),
    FocusColumn("ChargeFrequency", "String", "'Usage-Based'"),
    FocusColumn("ChargePeriodStart", "Date/Time", f"formatDateTime(toStartOfHour(occurred_at), {_ISO}, 'UTC')"),
    FocusColumn(
        "ChargePeriodEnd", "Date/Time", f"formatDateTime(toStartOfHour(occurred_at) + INTERVAL 1 HOUR, {_ISO}, 'UTC')"
    ),
    FocusColumn(
        "ConsumedQuantity",
        "Decimal",
        "toDecimal128(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens + reasoning_tokens, 1)",
    ),
    FocusColumn("ConsumedUnit", "String", "'Tokens'"),
    FocusColumn("ContractedCost", "Decimal", _COST),
    FocusColumn("ContractedUnitPrice", "Decimal", _COST),
    FocusColumn("EffectiveCost", "Decimal", _COST),
    FocusColumn("InvoiceIssuerName", "String", "provider", text=True, name_1_0="InvoiceIssuer"),
    FocusColumn("ListCost", "Decimal", _COST),
    FocusColumn("ListUnitPrice", "Decimal", _COST),
    FocusColumn("PricingCategory", "String", "'Standard'"),
    FocusColumn("PricingQuantity", "Decimal", "toDecimal32(1, 1)"),
    FocusColumn("PricingUnit", "String", "'Requests'"),
    FocusColumn("ProviderName", "String", "provider", text=True, name_1_0="Provider"),
    FocusColumn("PublisherName", "String", "provider", text=True, name_1_0="Publisher"),
    FocusColumn("ServiceCategory", "String", "'AI and Machine Learning'"),
    FocusColumn("ServiceSubcategory", "String", "'Generative AI'", versions=("1.2",)),
    FocusColumn("ServiceName", "String", "model", text=True),
    FocusColumn("SkuId", "String", "concat(provider, '/', model)", text=True),
    FocusColumn("SkuPriceId", "String", "concat(provider, '/', model, '/', price_source)", text=True),
    FocusColumn("SubAccountId", "String", "nullIf(department_id, '')", text=True),
    FocusColumn("SubAccountName", "String", "nullIf(department_id, '')", text=True),
    FocusColumn(
        "Tags",
        "JSON",
        "toJSONString(mapConcat(mapFilter((k, v) -> NOT startsWith(k, 'spendstream/'), metadata), "
        "mapFilter((k, v) -> v != '', map('spendstream/department', department_id, 'spendstream/user', user_id, "
        "'spendstream/feature', feature, 'spendstream/api-key', api_key_id))))",
    ),
    # FOCUS 1.0 requires these to be present; spendstream has no value for them
    *(
        FocusColumn(name, "String", _NULL, versions=("1.0",))
        for name in (
            "AvailabilityZone",
            "CommitmentDiscountCategory",
            "CommitmentDiscountId",
            "CommitmentDiscountName",
            "CommitmentDiscountStatus",
            "CommitmentDiscountType",
            "RegionId",
            "RegionName",
            "ResourceID",
            "ResourceName",
            "ResourceType",
        )
    ),
    FocusColumn("x_EventId", "String", "event_id", text=True),
    FocusColumn("x_CostNanos", "Integer", "cost_nanos"),
    FocusColumn("x_UserId", "String", "user_id", text=True),
    FocusColumn("x_Feature", "String", "feature", text=True),
    FocusColumn("x_Status", "String", "status"),
)


def _guarded(sql: str) -> str:
    return f"if(match({sql}, '^[=+\\\\-@\\t\\r]'), concat('''', {sql}), {sql})"


def _billing_month(closes: Sequence[PeriodClose]) -> str:
    """The month a row is billed to: where it happened, or the first later month not closed before it."""
    if not closes:
        return _MONTH
    candidate = "arrayMap(i -> addMonths(usage_month, i), range(0, 1 + {spanned:UInt16}))"
    open_for_row = (
        "m -> NOT (has({closed:Array(Date)}, m) AND (ingested_at, event_id) > "
        "(arrayElement({closed_at:Array(DateTime64(3, 'UTC'))}, indexOf({closed:Array(Date)}, m)), "
        "arrayElement({closed_id:Array(String)}, indexOf({closed:Array(Date)}, m))))"
    )
    return f"if(has({{closed:Array(Date)}}, usage_month), arrayFirst({open_for_row}, {candidate}), usage_month)"


def focus_query(database: str, version: str, csv: bool, closes: Sequence[PeriodClose]) -> str:
    """The SELECT of one page: rows after ``{after_*}`` up to ``{end_*}``, of ``{org}``."""
    columns = []
    for column in COLUMNS:
        if version not in column.versions:
            continue
        name = column.name_1_0 if version == "1.0" and column.name_1_0 else column.name
        sql = _guarded(column.sql) if csv and column.text else column.sql
        columns.append(f"{sql} AS {name}")
    return (
        f"SELECT {', '.join(columns)} FROM "
        f"(SELECT *, {_MONTH} AS usage_month, {_billing_month(closes)} AS billing_month "
        f"FROM {database}.usage_events WHERE org_id = {{org:String}} "
        "AND (ingested_at, event_id) > ({after_at:DateTime64(3, 'UTC')}, {after_id:String}) "
        "AND (ingested_at, event_id) <= ({end_at:DateTime64(3, 'UTC')}, {end_id:String})) "
        "ORDER BY ingested_at, event_id"
    )


def close_parameters(closes: Sequence[PeriodClose]) -> dict[str, Any]:
    if not closes:
        return {}
    months = [c.month for c in closes]
    return {
        "closed": months,
        "closed_at": [_ms(c.position.at) for c in closes],
        "closed_id": [c.position.event_id for c in closes],
        "spanned": len(months),
    }


# decimals keep their scale ("1.0", "0.123000000"), so that a reader that guesses types sees decimals
CHUNK_BYTES = 256 * 1024
OUTPUT_SETTINGS = {
    "format_csv_null_representation": "",
    "output_format_csv_crlf_end_of_line": 1,  # RFC 4180
    "output_format_json_escape_forward_slashes": 0,
    "output_format_decimal_trailing_zeros": 1,
}


class ExportSource(Protocol):
    @property
    def database(self) -> str: ...

    @property
    def client(self) -> Any: ...


def _ms(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"


def page_end(
    store: ExportSource, org_id: str, after: ExportPosition, limit: int, settle_s: float
) -> tuple[int, ExportPosition]:
    """How many rows follow ``after`` (at most ``limit``) among those stored ``settle_s`` ago, and the
    position of the last: where this page ends and the next begins."""
    result = store.client.query(
        f"SELECT count(), max(ingested_at), argMax(event_id, (ingested_at, event_id)) FROM ("
        f"SELECT ingested_at, event_id FROM {store.database}.usage_events WHERE org_id = {{org:String}} "
        "AND (ingested_at, event_id) > ({after_at:DateTime64(3, 'UTC')}, {after_id:String}) "
        "AND ingested_at < now64(3) - toIntervalMillisecond({settle_ms:UInt64}) "
        "ORDER BY ingested_at, event_id LIMIT {limit:UInt64})",
        parameters={
            "org": org_id,
            "after_at": _ms(after.at),
            "after_id": after.event_id,
            "settle_ms": int(settle_s * 1000),
            "limit": limit,
        },
    )
    count, at, event_id = result.result_rows[0]
    if not count:
        return 0, after
    return int(count), ExportPosition(at.astimezone(UTC), str(event_id))


def settled_end(store: ExportSource, org_id: str, settle_s: float) -> ExportPosition:
    """The position of the org's last row stored ``settle_s`` ago (the start when there is none)."""
    result = store.client.query(
        "SELECT count(), max(ingested_at), argMax(event_id, (ingested_at, event_id)) "
        f"FROM {store.database}.usage_events WHERE org_id = {{org:String}} "
        "AND ingested_at < now64(3) - toIntervalMillisecond({settle_ms:UInt64})",
        parameters={"org": org_id, "settle_ms": int(settle_s * 1000)},
    )
    count, at, event_id = result.result_rows[0]
    return ExportPosition(at.astimezone(UTC), str(event_id)) if count else EXPORT_START


def focus_rows(
    store: ExportSource,
    org_id: str,
    timezone: str,
    closes: Sequence[PeriodClose],
    after: ExportPosition,
    end: ExportPosition,
    version: str = "1.2",
    fmt: str = "CSVWithNames",
) -> Iterator[bytes]:
    """The page's rows, formatted by ClickHouse (``CSVWithNames`` or ``JSONEachRow``), as they arrive."""
    parameters: dict[str, Any] = {
        "org": org_id,
        "tz": timezone,
        "after_at": _ms(after.at),
        "after_id": after.event_id,
        "end_at": _ms(end.at),
        "end_id": end.event_id,
        **close_parameters(closes),
    }
    sql = focus_query(store.database, version, fmt.startswith("CSV"), closes)
    stream = store.client.raw_stream(sql, parameters=parameters, fmt=fmt, settings=OUTPUT_SETTINGS)
    try:  # read in large pieces: iterating the stream would yield it line by line
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk
    finally:
        stream.close()
