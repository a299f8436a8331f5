"""The FOCUS rows of each token type, from rows rated with a discount, against the real ClickHouse: the
parts of an event sum to its cost to the nano-USD, ListCost is the exact price of the tokens before the
discount and BilledCost the share after it, one ListUnitPrice per SkuPriceId, and an event the catalogue
could not split (a proxy's cost, or a row stored before costs were split) is one row priced per request."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from schemas.events import UsageEvent
from schemas.focus_export import EXPORT_START
from schemas.price_sources import load_overrides
from schemas.pricing import TOKEN_TYPES, rate
from schemas.settings import Settings
from sinks.focus import focus_rows, page_end
from sinks.usage_rows import usage_row
from sinks.usage_store import UsageStore
from tests.deployment import PRICES

pytestmark = pytest.mark.stack

AT = datetime(2026, 10, 14, 9, 30, tzinfo=UTC)
M = Decimal(1_000_000)
# FOCUS 1.0's columns as the specification names them (tag v1.0, specification/columns)
FOCUS_1_0 = [
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
]


def _event(i: int, model: str = "gpt-4o", **tokens: int) -> UsageEvent:
    return UsageEvent(
        event_id=f"f{i:03d}", occurred_at=AT, org_id="acme", department_id="eng", user_id="u", feature="chat",
        provider="openai" if model != "mystery" else "acme-ai", model=model, **tokens,  # type: ignore[arg-type]
    )  # fmt: skip


def test_rows_per_token_type_list_and_billed_cost_and_unit_prices(stack: Settings, ch_database: str) -> None:
    catalogue = load_overrides(PRICES + 'discounts: {acme: "0.137"}\n')
    store = UsageStore(stack.clickhouse.host, stack.clickhouse.port, ch_database)
    store.migrate()
    events = [
        _event(i, "gpt-4o" if i % 2 else "gpt-4o-mini", input_tokens=1000 + 37 * i, output_tokens=11 * i,
               cache_read_tokens=(i % 3) * 101)
        for i in range(40)
    ]  # fmt: skip
    events.append(_event(40, "gpt-4o"))  # no tokens at all: one input row of $0
    proxied = _event(41, "mystery", input_tokens=500, cost_nanos=1_000_000)
    rows = []
    for offset, event in enumerate([*events, proxied]):
        rating = rate(event, catalogue)
        rows.append(usage_row(event, rating.cost_nanos, rating.source.value, 0, offset, rating.list_nanos,
                              rating.split))  # fmt: skip
    old = _event(42, "gpt-4o", input_tokens=100, output_tokens=10)  # stored before costs were split
    rows.append(usage_row(old, 350_000, "catalogue", 0, 42))
    store.insert_usage(rows, "focus-test")

    page = page_end(store, "acme", EXPORT_START, 1000, 0)
    text = b"".join(focus_rows(store, "acme", "Europe/Berlin", [], EXPORT_START, page.end)).decode()
    focus = list(csv.DictReader(io.StringIO(text)))
    assert page.events == len(rows) and page.rows == len(focus)

    by_event: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in focus:
        by_event[row["x_EventId"]].append(row)
    prices_of_sku: dict[str, set[str]] = defaultdict(set)
    for event in events:
        mine = by_event[event.event_id]
        rating = rate(event, catalogue)
        assert rating.split is not None
        assert sum(int(r["x_CostNanos"]) for r in mine) == rating.cost_nanos  # exact to the event
        used = [t for t in TOKEN_TYPES if getattr(event, f"{t}_tokens")] or ["input"]
        assert [r["x_TokenType"] for r in mine] == used
        for row in mine:
            kind = TOKEN_TYPES.index(row["x_TokenType"])
            price = catalogue.lookup("openai", event.model, AT).prices.per_type()[kind]  # type: ignore[union-attr]
            tokens = getattr(event, f"{row['x_TokenType']}_tokens")
            assert row["PricingUnit"] == "1000000 Tokens" and row["ConsumedUnit"] == "Tokens"
            assert Decimal(row["ConsumedQuantity"]) == tokens and Decimal(row["PricingQuantity"]) * M == tokens
            assert Decimal(row["ListUnitPrice"]) == price * M  # the catalogue's price per million tokens
            assert (
                Decimal(row["ListCost"])
                == tokens * price
                == Decimal(row["PricingQuantity"]) * Decimal(row["ListUnitPrice"])
            )
            billed = Decimal(row["BilledCost"])
            assert abs(billed - Decimal(row["ListCost"]) * (1 - Decimal("0.137"))) < Decimal("1e-9")
            assert Decimal(row["ContractedUnitPrice"]) == price * M * (1 - Decimal("0.137"))
            assert row["EffectiveCost"] == row["ContractedCost"] == row["BilledCost"]
            assert row["SkuId"] == f"openai/{event.model}/{row['x_TokenType']}"
            prices_of_sku[row["SkuPriceId"]].add(row["ListUnitPrice"])
    assert all(len(prices) == 1 for prices in prices_of_sku.values())  # one unit price per SkuPriceId
    used_types = {(e.model, t) for e in events for t in TOKEN_TYPES if getattr(e, f"{t}_tokens")}
    assert len(prices_of_sku) == len(used_types) == 6  # gpt-4o and its mini: input, output and cache read

    for event, cost, listed in ((proxied, 863_000, "0.001000000000000000"), (old, 350_000, "0.000350000000000000")):
        (row,) = by_event[event.event_id]
        assert (row["PricingUnit"], row["PricingQuantity"], row["x_TokenType"]) == ("Requests", "1.000000", "")
        assert int(row["x_CostNanos"]) == cost and row["ListCost"] == listed
    assert sum(Decimal(r["BilledCost"]) for r in focus) * 10**9 == sum(r.cost_nanos for r in rows)

    v10 = b"".join(focus_rows(store, "acme", "Europe/Berlin", [], EXPORT_START, page.end, "1.0")).decode()
    header = next(csv.reader(io.StringIO(v10)))
    # the 1.0 names (InvoiceIssuerName, ProviderName, PublisherName, ResourceId), and no other
    assert sorted(c for c in header if not c.startswith("x_")) == sorted(FOCUS_1_0)
