"""One Vega-Lite definition per chart (pure): the console draws it in the browser with the vendored
``vega-embed`` bundle, and the PDF reports render the very same spec to SVG with ``vl-convert``.

Money arrives as integer nano-USD and is turned into USD for display only, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["daily_spend", "forecast_cone", "tokens_by_model"]

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
        "data": {"values": list(values)},
        "config": {"view": {"stroke": None}, "axis": {"labelFontSize": 11, "titleFontSize": 12}},
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
    """Spent so far, the P10-P90 band of the projection and its median, against the budget."""
    values = [
        {"what": "spent", "usd": spent_nanos * _USD},
        {"what": "projected (median)", "usd": p50_nanos * _USD, "low": p10_nanos * _USD, "high": p90_nanos * _USD},
    ]
    spec = _base(label, values, f"{label}: spent so far, projected end of period with its P10 to P90 range")
    spec["height"] = 90
    layers: list[Spec] = [
        {
            "mark": {"type": "bar", "color": "#2563eb", "tooltip": True},
            "encoding": {
                "y": {"field": "what", "type": "nominal", "title": None, "sort": None},
                "x": {"field": "usd", "type": "quantitative", "title": "USD", "axis": {"format": "$,.2f"}},
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
    if budget_nanos:
        layers.append(
            {
                "data": {"values": [{"budget": budget_nanos * _USD}]},
                "mark": {"type": "rule", "color": "#b91c1c", "strokeDash": [4, 3], "strokeWidth": 2},
                "encoding": {"x": {"field": "budget", "type": "quantitative"}},
            }
        )
    spec["layer"] = layers
    return spec
