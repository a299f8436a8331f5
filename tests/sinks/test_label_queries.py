"""Spend by API key and by declared tag on the embedded ClickHouse: the label rollup against sums of the raw
events, and the raw path when a view is grouped by one label and narrowed to another."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from schemas.allocation_tags import UNTAGGED, parse_tag_rules, tag_values
from schemas.events import UsageEvent
from schemas.settings import Settings
from sinks import queries
from sinks.label_queries import spend_by_label
from sinks.usage_rows import usage_row
from sinks.usage_store import UsageStore

pytestmark = pytest.mark.stack

START = datetime(2026, 11, 2, tzinfo=UTC)
END = START + timedelta(days=7)
RULES = parse_tag_rules(["project", {"customer": {"values": ["c1", "c2"]}}])


@pytest.fixture
def store(stack: Settings, ch_database: str) -> Iterator[UsageStore]:
    s = UsageStore(stack.clickhouse.host, stack.clickhouse.port, ch_database)
    s.migrate()
    rng = random.Random(3)
    rows = []
    for i in range(600):
        metadata = {
            "project": rng.choice(["apollo", "gemini", "bad value"]),
            "customer": rng.choice(["c1", "c2", "c9"]),
        }
        if i % 7 == 0:
            metadata = {}
        event = UsageEvent(
            event_id=f"e{i}",
            occurred_at=START + timedelta(minutes=13 * i),  # all within [START, END),
            org_id="acme",
            department_id=rng.choice(["eng", "sales"]),
            user_id=f"u{i % 5}",
            feature="chat",
            provider="openai",
            model=rng.choice(["gpt-4o", "gpt-4o-mini"]),
            input_tokens=100 + i,
            metadata=metadata,
            api_key_id=rng.choice(["k1", "k2", None]),
        )
        declared = i >= 40  # the first events were stored before the org declared its tags
        rows.append(
            usage_row(event, 1_000 + 37 * i, "catalogue", 0, i, tags=tag_values(RULES, metadata) if declared else None)
        )
    s.insert_usage(rows, "seed")
    yield s


def _sums(store: UsageStore, expression: str, where: str = "1") -> dict[str, int]:
    sql = (
        f"SELECT {expression} AS key, sum(cost_nanos) FROM {store.database}.usage_events "
        f"WHERE org_id = 'acme' AND {where} GROUP BY key"
    )
    return {str(key): int(cost) for key, cost in store.query(sql)}


def _costs(store: UsageStore, query: queries.Query) -> dict[str, int]:
    return {str(row[0]): int(row[7]) for row in store.query(*query)}


def test_spend_by_a_tag_or_the_api_key_equals_the_raw_events(store: UsageStore) -> None:
    db = store.database
    declared = "mapContains(tags, 'project')"
    by_project = _costs(store, spend_by_label(db, "tag:project", "acme", START, END))
    assert by_project == _sums(store, "tags['project']", declared)
    assert set(by_project) == {"apollo", "gemini", UNTAGGED}  # "bad value" and no value: (untagged)
    by_customer = _costs(store, spend_by_label(db, "tag:customer", "acme", START, END))
    assert set(by_customer) == {"c1", "c2", UNTAGGED}  # c9 is not a listed value
    by_key = _costs(store, spend_by_label(db, "api_key", "acme", START, END))
    assert by_key == _sums(store, "api_key_id")  # every event, with or without tags
    assert sum(by_key.values()) == _sums(store, "org_id")["acme"]


def test_narrowed_to_a_tag_value_every_view_reads_its_events(store: UsageStore) -> None:
    db = store.database
    apollo = queries.Narrow(label="tag:project", label_value="apollo")
    by_model = _costs(store, queries.spend_by(db, "model", "acme", START, END, apollo))
    assert by_model == _sums(store, "model", "tags['project'] = 'apollo'")
    daily = store.query(*queries.series(db, "acme", "day", START, END, "UTC", apollo))
    assert sum(int(row[7]) for row in daily) == sum(by_model.values())
    sales_apollo = queries.Narrow(department="sales", label="tag:project", label_value="apollo")
    by_key = _costs(store, spend_by_label(db, "api_key", "acme", START, END, sales_apollo))  # the raw path
    assert by_key == _sums(store, "api_key_id", "tags['project'] = 'apollo' AND department_id = 'sales'")
    k1 = queries.Narrow(label="api_key", label_value="k1")
    by_customer = _costs(store, spend_by_label(db, "tag:customer", "acme", START, END, k1))
    assert by_customer == _sums(store, "tags['customer']", "api_key_id = 'k1'")
    assert "" in by_customer  # events stored before the declaration have no value in the raw events


def test_a_project_chargeback_reads_every_nano_usd_of_the_month(store: UsageStore) -> None:
    from reports.chargeback import chargeback_report
    from reports.data import chargeback_data
    from schemas.budgets import OrgConfig
    from schemas.config_records import ConfigState
    from schemas.cost_allocation import parse_chargeback

    state = ConfigState()
    state.orgs["acme"] = OrgConfig("acme", tags=RULES, chargeback=parse_chargeback({"by": "project"}, "c"))
    data = chargeback_data(store, state, "acme", date(2026, 11, 1), datetime(2026, 12, 1, tzinfo=UTC))
    tagged = _sums(store, "tags['project']")
    assert data.spend.pop("") == (  # untagged, and stored before the declaration (no tag at all)
        int(
            store.query(
                f"SELECT count() FROM {store.database}.usage_events WHERE tags['project'] IN ('', '(untagged)')"
            )[0][0]
        ),
        tagged.pop("") + tagged.pop(UNTAGGED),
    )
    assert {k: cost for k, (_, cost) in data.spend.items()} == tagged
    data = chargeback_data(store, state, "acme", date(2026, 11, 1), datetime(2026, 12, 1, tzinfo=UTC))
    charged = sum(int(row[5]) for row in chargeback_report(data).tables[0].rows)
    assert charged == _sums(store, "org_id")["acme"]


def test_what_caps_count_per_tag_value_equals_the_raw_events(store: UsageStore) -> None:
    """A rebuilt Redis counts each declared tag value as the scope ``tag/<key>=<value>``; (untagged) is none."""
    rows = store.query(*queries.period_spend_by_scopes(store.database, "acme", START, START, START, END))
    tags = {str(r[0]): int(r[3]) for r in rows if str(r[0]).startswith("tag/")}
    expected = {
        f"tag/{key}={value}": cost
        for key in ("project", "customer")
        for value, cost in _sums(store, f"tags['{key}']", f"mapContains(tags, '{key}')").items()
        if value != UNTAGGED
    }
    assert tags == expected and set(tags) == {
        "tag/project=apollo",
        "tag/project=gemini",
        "tag/customer=c1",
        "tag/customer=c2",
    }
    assert {str(r[0]): int(r[3]) for r in rows}["org/acme"] == _sums(store, "org_id")["acme"]
