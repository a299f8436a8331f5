"""config.v1 records, folded in topic order: the latest value of a key wins, a null deletes, a bad one is refused."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from schemas.budget_file import parse_budget_file
from schemas.budgets import Budget, BudgetMode, OrgConfig, Period, ScopeKind
from schemas.config_records import (
    ConfigRecord,
    ConfigState,
    budget_record,
    file_records,
    org_record,
    prices_litellm_record,
    prices_overrides_record,
    routing_record,
)

BUDGET = Budget("acme", ScopeKind.DEPARTMENT, "eng", Period.MONTHLY, 10**12, BudgetMode.HARD, (50, 100))
PRICE_MAP = json.dumps(
    {"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05}}
)


def test_records_round_trip_through_the_state() -> None:
    state = ConfigState()
    state.apply(org_record(OrgConfig("acme", "Europe/Berlin", "open", 5, "allow")))
    state.apply(budget_record(BUDGET))
    assert state.orgs["acme"] == OrgConfig("acme", "Europe/Berlin", "open", 5, "allow")
    assert state.budgets["budget/acme/department/eng/monthly"] == BUDGET


def test_the_latest_value_wins_and_a_null_deletes() -> None:
    state = ConfigState()
    key = "budget/acme/department/eng/monthly"
    state.apply(budget_record(BUDGET))
    raised = json.loads(budget_record(BUDGET).value or b"") | {"limit_nanos": 2 * 10**12}
    state.apply(ConfigRecord(key, json.dumps(raised).encode()))
    assert state.budgets[key].limit_nanos == 2 * 10**12
    state.apply(ConfigRecord(key, None))
    assert key not in state.budgets
    state.apply(ConfigRecord(key, None))  # deleting what is gone is no error


@pytest.mark.parametrize(
    ("record", "names"),
    [
        (ConfigRecord("weather/acme", b"{}"), "unknown key"),
        (ConfigRecord("budget/acme/department/eng/monthly", b"{not json"), "budget/acme/department/eng/monthly"),
        (ConfigRecord("budget/acme/team/eng/monthly", b'{"limit_nanos": 1, "mode": "hard", "stages": [100]}'), "team"),
        (ConfigRecord("org/acme", b'{"timezone": "Mars/Olympus"}'), "timezone"),
        (ConfigRecord("routing/acme", b'{"weather": ["x"]}'), "routing/acme"),
    ],
)
def test_a_record_that_cannot_be_used_is_refused_naming_its_key(record: ConfigRecord, names: str) -> None:
    state = ConfigState()
    with pytest.raises(ValueError, match=f"config record {record.key}") as info:
        state.apply(record)
    assert names in str(info.value)
    assert not state.budgets and not state.orgs and not state.routing  # nothing half-applied


def test_prices_fold_into_one_catalogue_and_overrides_win() -> None:
    state = ConfigState()
    state.apply(prices_litellm_record(PRICE_MAP, datetime(2024, 1, 1, tzinfo=UTC)))
    first = state.catalogue()
    assert state.catalogue() is first  # built once until prices change
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def input_price() -> Decimal:
        entry = state.catalogue().lookup("openai", "gpt-4o", at)
        assert entry is not None
        return entry.prices.input

    assert input_price() == Decimal("0.0000025")
    overrides = (
        "prices:\n  - {provider: openai, model: gpt-4o, effective_from: '2025-01-01T00:00:00Z', "
        "input: 0.000001, output: 0.000002}\n"
    )
    state.apply(prices_overrides_record(overrides))
    assert input_price() == Decimal("0.000001")
    state.apply(ConfigRecord("prices/overrides", None))
    assert input_price() == Decimal("0.0000025")


def test_a_budgets_file_replaces_what_its_orgs_had() -> None:
    state = ConfigState()
    for record in file_records(
        parse_budget_file(
            "budgets:\n  - {org: acme, scope: department, id: eng, limit: 10}\n"
            "  - {org: acme, scope: user, id: ada, limit: 1}\n"
            "  - {org: globex, limit: 5}\n"
        ),
        state,
    )[0]:
        state.apply(record)
    records, deleted = file_records(
        parse_budget_file("budgets:\n  - {org: acme, scope: department, id: eng, limit: 20}\n"), state
    )
    assert deleted == 1 and ConfigRecord("budget/acme/user/ada/monthly", None) in records
    for record in records:
        state.apply(record)
    assert sorted(state.budgets) == ["budget/acme/department/eng/monthly", "budget/globex/org/globex/monthly"]


def test_channels_resolve_secrets_where_the_worker_applies_them() -> None:
    body = {"type": "slack", "url": "env:SPENDSTREAM_SECRET_ACME_SLACK"}
    record = ConfigRecord("channel/acme/eng", json.dumps(body).encode())
    admin = ConfigState()  # the CLI: no environment to resolve from, accepted as written
    admin.apply(record)
    worker = ConfigState({"SPENDSTREAM_SECRET_ACME_SLACK": "https://hooks.slack.example/T/B/x"})
    worker.apply(record)
    assert worker.channels[("acme", "eng")].targets == ("https://hooks.slack.example/T/B/x",)
    with pytest.raises(ValueError, match="SPENDSTREAM_SECRET_ACME_SLACK"):
        ConfigState({}).apply(record)
    with pytest.raises(ValueError):
        routing_record("acme", {"default": "not-a-list"})


def test_notify_closed_periods_goes_from_the_file_through_the_topic() -> None:
    from schemas.budget_file import BudgetFileError, parse_budget_file
    from schemas.config_records import org_record, parse_org

    parsed = parse_budget_file("orgs:\n  acme: {notify_closed_periods: true}\n  globex: {}\n")
    assert parsed.orgs["acme"].notify_closed_periods and not parsed.orgs["globex"].notify_closed_periods
    for org in parsed.orgs.values():
        record = org_record(org)
        assert parse_org(record.key, record.value or b"") == org
    with pytest.raises(BudgetFileError) as info:
        parse_budget_file("orgs:\n  acme: {notify_closed_periods: sometimes}\n")
    assert info.value.field == "orgs.acme.notify_closed_periods"
