"""One Vega-Lite definition per chart (pure): the console draws it in the browser with the vendored
``vega-embed`` bundle, and the PDF reports render the very same spec to SVG with ``vl-convert``.

Money arrives as integer nano-USD and is turned into USD for display only, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.money import format_usd

__all__ = [
    "adoption",
    "breakdown",
    "cost_series",
    "daily_spend",
    "forecast_cone",
    "forecast_cones",
    "heatmap",
    "tokens_by_model",
    "weekday_profile",
    "weekly_trend",
]

Spec = dict[str, Any]
_SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"  # an identifier: nothing is fetched from it
_USD = 1e-9


def _base(title: str, values: Sequence[dict[str, Any]], description: str) -> Spec:
    return {
        "$schema": _SCHEMA,
        "title": title,
        "description": description,  # what a screen reader announces for the chart
        "width": "container",
        "height": 220,
        "autosize": {"type": "fit-x", "contains": "padding"},
        "padding": {"left": 5, "top": 5, "right": 18, "bottom": 5},  # room for the last x label's second half
        "data": {"values": list(values)},
        "config": {
            "view": {"stroke": None},
            "font": "DejaVu Sans",  # measured in the face the PDF sets, so no label runs past the chart's edge
            "axis": {"labelFontSize": 11, "titleFontSize": 12},
            # under the chart, so a feature or model name shows in full ("autocomplet" beside it) at any width
            "legend": {"orient": "bottom", "direction": "vertical", "labelLimit": 440},
        },
    }


def daily_spend(days: Sequence[dict[str, Any]]) -> Spec:
    """Cost per day: bars."""
    values = [{"day": d["day"], "usd": d["cost_nanos"] * _USD} for d in days]
    spec = _base("Cost per day (USD)", values, "Bar chart of the cost of each of the last 30 days")
    spec["mark"] = {"type": "bar", "color": "#2563eb", "tooltip": True}
    spec["encoding"] = {
        "x": {
            "field": "day",
            "type": "ordinal",
            "timeUnit": "yearmonthdate",
            "title": None,
            "axis": {"format": "%b %d"},
        },
        "y": {"field": "usd", "type": "quantitative", "title": "USD", "axis": {"format": "$,.2f"}},
    }
    return spec


def tokens_by_model(models: Sequence[dict[str, Any]]) -> Spec:
    """Tokens per model, input and output stacked."""
    values = []
    for m in models:
        values.append({"model": m["model"], "kind": "input", "tokens": m["input_tokens"]})
        values.append({"model": m["model"], "kind": "output", "tokens": m["output_tokens"]})
        other = m["tokens"] - m["input_tokens"] - m["output_tokens"]
        if other:
            values.append({"model": m["model"], "kind": "cache and reasoning", "tokens": other})
    spec = _base("Tokens by model", values, "Horizontal bars of the tokens each model used this period")
    spec["height"] = max(60, 26 * len(models))
    spec["mark"] = {"type": "bar", "tooltip": True}
    spec["encoding"] = {
        "y": {"field": "model", "type": "nominal", "sort": "-x", "title": None},
        "x": {"field": "tokens", "type": "quantitative", "aggregate": "sum", "title": "tokens"},
        "color": {
            "field": "kind",
            "type": "nominal",
            "title": None,
            "scale": {"domain": ["input", "output", "cache and reasoning"], "range": ["#1d4ed8", "#60a5fa", "#a5b4fc"]},
        },
    }
    return spec


def forecast_cone(
    spent_nanos: int, p10_nanos: int, p50_nanos: int, p90_nanos: int, budget_nanos: int, label: str
) -> Spec:
    """Spent so far, the P10-P90 band of the projection and its median, against the budget.

    The scale fits what is spent and projected, so a projection far below its budget is still drawn
    where it can be read; the budget is marked when it is within three times the P90, and otherwise
    named in the subtitle with the share of it the projection reaches."""
    values = [
        {"what": "spent", "usd": spent_nanos * _USD},
        {"what": "projected (median)", "usd": p50_nanos * _USD, "low": p10_nanos * _USD, "high": p90_nanos * _USD},
    ]
    spec = _base(label, values, f"{label}: spent so far, projected end of period with its P10 to P90 range")
    spec["height"] = 90
    reach = max(spent_nanos, p90_nanos, p50_nanos, 1)
    marked = bool(budget_nanos) and budget_nanos <= 3 * reach
    top = max(reach, budget_nanos if marked else 0) * 1.08 * _USD
    if budget_nanos and not marked:
        spec["title"] = {
            "text": label,
            "subtitle": f"Budget {format_usd(budget_nanos, 2)} is off this scale: the P90 is "
            f"{p90_nanos * 100 / budget_nanos:.1f}% of it",
        }
    if marked:
        spec["title"] = {"text": label, "subtitle": f"Budget {format_usd(budget_nanos, 2)}: the dashed red line"}
    x_scale = {"domain": [0, top], "nice": False}
    layers: list[Spec] = [
        {
            "mark": {"type": "bar", "color": "#2563eb", "tooltip": True},
            "encoding": {
                "y": {"field": "what", "type": "nominal", "title": None, "sort": None},
                "x": {
                    "field": "usd",
                    "type": "quantitative",
                    "title": "USD",
                    "axis": {"format": "$,.2f"},
                    "scale": x_scale,
                },
            },
        },
        {
            "mark": {"type": "rule", "color": "#111827", "strokeWidth": 2},
            "encoding": {
                "y": {"field": "what", "type": "nominal", "sort": None},
                "x": {"field": "low", "type": "quantitative"},
                "x2": {"field": "high"},
            },
        },
    ]
    if marked:
        layers.append(
            {
                "data": {"values": [{"budget": budget_nanos * _USD}]},
                "mark": {"type": "rule", "color": "#b91c1c", "strokeDash": [4, 3], "strokeWidth": 2},
                "encoding": {"x": {"field": "budget", "type": "quantitative"}},
            }
        )
    spec["layer"] = layers
    return spec


def cost_series(series: Sequence[dict[str, Any]], granularity: str) -> Spec:
    """Cost per day, week or month of a filtered view."""
    values = [{"period": r["key"], "usd": r["cost_nanos"] * _USD} for r in series]
    spec = _base(f"Cost per {granularity} (USD)", values, f"Bar chart of the cost of each {granularity}")
    spec["mark"] = {"type": "bar", "color": "#2563eb", "tooltip": True}
    spec["encoding"] = {
        "x": {"field": "period", "type": "ordinal", "title": None},
        "y": {"field": "usd", "type": "quantitative", "title": "USD", "axis": {"format": "$,.2f"}},
    }
    return spec


def breakdown(rows: Sequence[dict[str, Any]], group: str, top: int = 15) -> Spec:
    """The costliest values of a group (model, department ...), as horizontal bars."""
    values = [{"key": r["key"] or "(none)", "usd": r["cost_nanos"] * _USD} for r in rows[:top]]
    spec = _base(f"Cost by {group} (USD)", values, f"Horizontal bars of the cost of the top {top} by {group}")
    spec["height"] = max(60, 24 * len(values))
    spec["mark"] = {"type": "bar", "color": "#1d4ed8", "tooltip": True}
    spec["encoding"] = {
        "y": {"field": "key", "type": "nominal", "sort": "-x", "title": None},
        "x": {"field": "usd", "type": "quantitative", "title": "USD", "axis": {"format": "$,.2f"}},
    }
    return spec


TYPE_NAMES = {
    "input_cost_nanos": "input",
    "output_cost_nanos": "output",
    "cache_read_cost_nanos": "cache read",
    "cache_write_cost_nanos": "cache write",
    "reasoning_cost_nanos": "reasoning",
    "unsplit_cost_nanos": "not split",
}
"""The parts of a cost by token type, as the legend names them (``not split``: a cost the proxy reported)."""


def type_breakdown(rows: Sequence[dict[str, Any]], group: str, top: int = 15) -> Spec:
    """The costliest values of a group as horizontal bars stacked by token type."""
    values = [
        {"key": r["key"] or "(none)", "type": name, "usd": r[field] * _USD}
        for r in rows[:top]
        for field, name in TYPE_NAMES.items()
        if r.get(field)
    ]
    title = f"Cost by {group} and token type (USD)"
    spec = _base(title, values, f"Horizontal bars of the cost of the top {top} by {group}, stacked by token type")
    spec["height"] = max(60, 24 * len(rows[:top]))
    spec["mark"] = {"type": "bar", "tooltip": True}
    spec["encoding"] = {
        "y": {"field": "key", "type": "nominal", "sort": "-x", "title": None},
        "x": {"field": "usd", "type": "quantitative", "title": "USD", "axis": {"format": "$,.2f"}, "stack": True},
        "color": {"field": "type", "type": "nominal", "sort": list(TYPE_NAMES.values()), "title": "token type"},
        "order": {"field": "type", "sort": "ascending"},
    }
    return spec


def heatmap(cells: Sequence[dict[str, Any]]) -> Spec:
    """Requests by weekday and hour of day (the org's time zone): peak hours."""
    weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    spec = _base("Requests by weekday and hour", list(cells), "Heatmap of requests by weekday and hour of day")
    spec["height"] = 200
    spec["mark"] = {"type": "rect", "tooltip": True}
    spec["encoding"] = {
        "x": {"field": "hour", "type": "ordinal", "title": "hour of day"},
        "y": {"field": "weekday", "type": "ordinal", "sort": weekdays, "title": None},
        "color": {
            "field": "requests",
            "type": "quantitative",
            "scale": {"scheme": "blues", "type": "sqrt"},  # one busy hour must not wash out the rest
            "title": "requests",
        },
    }
    return spec


def weekday_profile(days: Sequence[dict[str, Any]]) -> Spec:
    values = [{"weekday": d["weekday"], "usd": d["cost_nanos"] * _USD} for d in days]
    spec = _base("Cost by weekday (USD)", values, "Bar chart of the cost of each weekday over the period")
    spec["mark"] = {"type": "bar", "color": "#2563eb", "tooltip": True}
    spec["encoding"] = {
        "x": {"field": "weekday", "type": "ordinal", "sort": None, "title": None},
        "y": {"field": "usd", "type": "quantitative", "title": "USD", "axis": {"format": "$,.2f"}},
    }
    return spec


# one label per week, at its Monday: the weeks are dates (the org's Mondays), read as such, not instants
_WEEK = {
    "field": "week",
    "type": "ordinal",
    "timeUnit": "utcyearmonthdate",
    "title": "week starting",
    "axis": {"format": "%b %d", "labelAngle": 0},
}


def weekly_trend(weeks: Sequence[dict[str, Any]]) -> Spec:
    values = [{"week": w["week"], "usd": w["cost_nanos"] * _USD} for w in weeks]
    spec = _base("Weekly cost (USD)", values, "Line chart of the cost of each week")
    spec["mark"] = {"type": "line", "point": True, "color": "#1d4ed8", "tooltip": True}
    spec["encoding"] = {
        "x": _WEEK,
        "y": {"field": "usd", "type": "quantitative", "title": "USD", "axis": {"format": "$,.2f"}},
    }
    return spec


def adoption(rows: Sequence[dict[str, Any]]) -> Spec:
    """Active users of each feature per week: feature adoption."""
    spec = _base("Active users per feature and week", list(rows), "Line chart of each feature's weekly users")
    spec["title"] = {
        "text": "Active users per feature and week",
        "subtitle": "A week the period starts or ends in is partial: fewer days, fewer users.",
    }
    spec["mark"] = {"type": "line", "point": True, "tooltip": True}
    spec["encoding"] = {
        "x": _WEEK,
        "y": {"field": "users", "type": "quantitative", "title": "active users"},
        "color": {"field": "feature", "type": "nominal", "title": "feature"},
    }
    return spec


def forecast_cones(rows: Sequence[dict[str, Any]]) -> Spec:
    """Every scope's projection on its own scale, one row each: spent so far, the P10-P90 band and the
    median of the end-of-period cost, and the budget."""
    values = [
        {
            "scope": f"{r['scope']} ({r['period']})",
            "spent": r["spent_nanos"] * _USD,
            "p10": r["p10_nanos"] * _USD,
            "p50": r["p50_nanos"] * _USD,
            "p90": r["p90_nanos"] * _USD,
            "budget": r["budget_nanos"] * _USD if r["budget_nanos"] else None,
        }
        for r in rows
    ]
    spec = _base("Projected end of period (USD)", values, "Each scope's spend so far, projection band and budget")
    del spec["width"], spec["height"], spec["autosize"]  # a facet sizes each row itself
    x = {"type": "quantitative", "title": None, "axis": {"format": "$,.2f", "tickCount": 5}}
    spec["facet"] = {
        "row": {
            "field": "scope",
            "type": "nominal",
            "title": None,
            "sort": None,
            "header": {"labelAngle": 0, "labelAlign": "left", "labelLimit": 260},
        }
    }
    spec["spec"] = {
        "width": 620,
        "height": 26,
        "layer": [
            {
                "mark": {"type": "bar", "color": "#bfdbfe"},
                "encoding": {"x": {"field": "p10", **x}, "x2": {"field": "p90"}},
            },
            {"mark": {"type": "bar", "color": "#2563eb", "height": 8}, "encoding": {"x": {"field": "spent", **x}}},
            {"mark": {"type": "tick", "color": "#111827", "thickness": 2}, "encoding": {"x": {"field": "p50", **x}}},
            {
                "transform": [{"filter": "datum.budget != null"}],
                "mark": {"type": "tick", "color": "#b91c1c", "thickness": 3},
                "encoding": {"x": {"field": "budget", **x}},
            },
        ],
    }
    spec["resolve"] = {"scale": {"x": "independent"}}
    return spec
