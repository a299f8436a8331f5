"""The console's pure pieces behind the pages: filters, the budget preview, channel input, CSV, and every
chart definition rendering (the same spec the PDF reports will render)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import vl_convert

from console.budget_edit import budget_from_input
from console.channel_edit import channel_from_input, routing_from_input
from console.preview import preview, preview_window
from console.roles import Principal, Role
from reports import charts
from reports.filters import CostFilter, FilterError, parse_filter
from schemas.budgets import OrgConfig
from schemas.channels import AlertConfigError

ADMIN = Principal("acme", "ada", Role.ADMIN)
TODAY = date(2026, 11, 30)


def test_filters_default_to_the_month_to_date_and_name_the_bad_parameter() -> None:
    f = parse_filter({}, "Europe/Berlin", TODAY)
    assert (f.first, f.last, f.granularity, f.group) == (date(2026, 11, 1), TODAY, "day", "model")
    assert f.start == datetime(2026, 10, 31, 23, tzinfo=UTC) and f.end == datetime(2026, 11, 30, 23, tzinfo=UTC)
    for params, field in (
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, "to"),
        ({"from": "2025-01-01"}, "from"),
        ({"granularity": "hour"}, "granularity"),
        ({"group": "team"}, "group"),
        ({"user": "a b"}, "user"),
    ):
        with pytest.raises(FilterError) as info:
            parse_filter(params, "UTC", TODAY)
        assert info.value.field == field


def test_a_drill_down_goes_from_a_department_to_its_users_and_keeps_the_rest() -> None:
    f = parse_filter({"group": "department", "from": "2026-11-01", "model": "gpt-4o"}, "UTC", TODAY)
    down = f.drill("eng")
    assert (down.department, down.group, down.model) == ("eng", "user", "gpt-4o")
    assert "department=eng" in down.params() and "group=user" in down.params() and "user=" not in down.params()
    assert f.drill("eng").drill("eng-u1").user == "eng-u1"


def test_a_preview_fires_each_stage_on_its_day_and_counts_a_hard_caps_denials() -> None:
    budget = budget_from_input(
        ADMIN,
        OrgConfig("acme"),
        {"scope": "department", "id": "eng", "period": "weekly", "limit": "10", "mode": "hard"},
    )
    days = [
        (date(2026, 11, 16), 4 * 10**9, 40),
        (date(2026, 11, 18), 5 * 10**9, 50),
        (date(2026, 11, 20), 3 * 10**9, 30),
    ]
    days.append((date(2026, 11, 24), 6 * 10**9, 60))  # the next week
    weeks = preview(budget, days, {date(2026, 11, 16): 12})
    assert [w.period_key for w in weeks] == ["2026-W47", "2026-W48"]
    assert weeks[0].spent_nanos == 12 * 10**9 and weeks[0].requests == 120
    assert weeks[0].stages == [(50, date(2026, 11, 18)), (80, date(2026, 11, 18)), (100, date(2026, 11, 20))]
    assert weeks[0].denied == 12 and weeks[1].denied == 0 and weeks[1].stages == [(50, date(2026, 11, 24))]
    start, end = preview_window(budget, datetime(2026, 11, 30, 12, tzinfo=UTC))
    assert start == datetime(2026, 10, 26, tzinfo=UTC) and end.day == 30  # the Monday of the week 30 days back


def test_channel_and_routing_input_name_the_form_field() -> None:
    record = channel_from_input(
        "acme", {"name": "leads", "type": "email", "recipients": "a@acme.example; b@acme.example"}
    )
    assert record.key == "channel/acme/leads" and b'"to": ["a@acme.example", "b@acme.example"]' in (record.value or b"")
    for data, field in (
        ({"name": "leads", "type": "email", "recipients": "nobody"}, "recipients"),
        ({"name": "Leads", "type": "email", "recipients": "a@acme.example"}, "name"),
        ({"name": "x", "type": "fax", "recipients": "1"}, "type"),
        ({"name": "x", "type": "sms", "recipients": "+1555", "rate_per_minute": "lots"}, "rate_per_minute"),
    ):
        with pytest.raises(AlertConfigError) as info:
            channel_from_input("acme", data)
        assert info.value.field == field
    with pytest.raises(AlertConfigError) as info:
        routing_from_input("acme", {"default": "leads, nope"}, {"leads"})
    assert info.value.field == "default"
    assert routing_from_input("acme", {"default": "leads", "spike": ""}, {"leads"}).value == b'{"default": ["leads"]}'


def test_every_chart_definition_renders() -> None:
    day = {
        "key": "2026-11-30",
        "requests": 3,
        "input_tokens": 10,
        "output_tokens": 5,
        "tokens": 18,
        "cost_nanos": 2 * 10**9,
    }
    forecast = {
        "scope": "org/acme",
        "period": "monthly",
        "spent_nanos": 5,
        "p10_nanos": 6,
        "p50_nanos": 8,
        "p90_nanos": 9,
        "budget_nanos": 7,
    }
    specs = [
        charts.daily_spend([{"day": "2026-11-30", "cost_nanos": 10**9}]),
        charts.tokens_by_model([{"model": "gpt-4o", "input_tokens": 10, "output_tokens": 5, "tokens": 18}]),
        charts.forecast_cone(5, 6, 8, 9, 7, "Month end"),
        charts.cost_series([day], "day"),
        charts.breakdown([day], "model"),
        charts.heatmap([{"weekday": "Mon", "hour": 9, "requests": 3, "cost_nanos": 1}]),
        charts.weekday_profile([{"weekday": "Mon", "requests": 3, "cost_nanos": 1}]),
        charts.weekly_trend([{"week": "2026-11-23", "cost_nanos": 1, "requests": 1, "change": None}]),
        charts.adoption([{"feature": "chat", "week": "2026-11-23", "users": 3, "requests": 9}]),
        charts.forecast_cones([forecast]),
    ]
    for spec in specs:
        svg = vl_convert.vegalite_to_svg({**spec, "width": 400})
        assert svg.startswith("<svg") and spec["description"]


def test_a_filter_knows_its_utc_range_across_a_daylight_saving_change() -> None:
    f = CostFilter(date(2026, 10, 25), date(2026, 10, 25), "Europe/Berlin")
    assert (f.end - f.start).total_seconds() == 25 * 3600  # the day the clocks went back


def test_the_openapi_document_describes_every_api_route() -> None:
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry
    from starlette.routing import Route

    from console.app import create_app
    from console.export_api import Exports
    from console.metrics import ConsoleMetrics
    from console.oidc import OidcClient
    from console.openapi import openapi_document
    from console.sso_pages import SsoPages
    from console.throttle import SignInThrottle
    from console.web import Web

    parts: Any = SimpleNamespace(reader=None)
    web = Web(parts, parts, SignInThrottle(5, 60), ConsoleMetrics(CollectorRegistry()))
    documented = openapi_document()["paths"]
    sso = SsoPages(web, parts, OidcClient(frozenset()), "http://127.0.0.1:8700")
    for route in create_app(web, sso, Exports(web, parts, 1, 10)).routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/v1/") or route.path.endswith("openapi.json"):
            continue
        path = route.path.replace("{key:path}", "{key}")
        assert path in documented, f"{path} is not in the OpenAPI document"
        methods = {m.lower() for m in route.methods or ()} - {"head"}
        assert methods <= set(documented[path]), (path, methods, set(documented[path]))
