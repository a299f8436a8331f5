"""A custom report (pure): any period, filter, grouping and granularity, as the console's Cost analysis
shows it, for the files."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from reports import charts
from reports.filters import CostFilter
from reports.model import Chart, Column, Figure, Kind, Report, Section, Table
from schemas.report_templates import NARROWING
from sinks.label_queries import API_KEY, TAG_PREFIX

__all__ = ["CustomData", "custom_report"]

Totals = tuple[str, int, int, int, int, int]  # key, requests, input, output, all tokens, cost nano-USD


@dataclass(slots=True)
class CustomData:
    org_id: str
    filter: CostFilter
    generated_at: datetime
    rows: list[Totals] = field(default_factory=list)  # by the filter's group
    series: list[Totals] = field(default_factory=list)  # by its granularity (key: the period's first day)


def _columns(first: Column) -> tuple[Column, ...]:
    return (
        first,
        Column("requests", "Requests", Kind.INT, total=True),
        Column("input_tokens", "Input tokens", Kind.INT, total=True),
        Column("output_tokens", "Output tokens", Kind.INT, total=True),
        Column("tokens", "All tokens", Kind.INT, total=True),
        Column("cost", "Cost", Kind.USD, total=True),
    )


def custom_report(data: CustomData) -> Report:
    f = data.filter
    narrowed_to = [(name, getattr(f, name)) for name in NARROWING if getattr(f, name) != "*"]
    if f.label:  # as a reader says it: "project apollo", "API key eng-key-0"
        narrowed_to.append(("API key" if f.label == API_KEY else f.label.removeprefix(TAG_PREFIX), f.label_value))
    narrowed = [f"{name} {value}" for name, value in narrowed_to]
    text = "Filtered to " + ", ".join(narrowed) + "." if narrowed else "All usage of the org."
    total = sum(r[5] for r in data.rows)
    series_values = [{"key": r[0], "cost_nanos": r[5]} for r in data.series]
    by_group = Table(
        "by_" + f.group, f"By {f.group}", _columns(Column(f.group, f.group.capitalize())), [tuple(r) for r in data.rows]
    )
    by_period = Table(
        "by_" + f.granularity,
        f"Per {f.granularity}",
        _columns(Column(f.granularity, f"{f.granularity.capitalize()} starting", Kind.DATE)),
        [(date.fromisoformat(r[0]), *r[1:]) for r in data.series],
    )
    return Report(
        "custom",
        "Usage report",
        data.org_id,
        f.first,
        f.last,
        f.timezone,
        data.generated_at,
        (
            Figure("Cost", total),
            Figure("Requests", sum(r[1] for r in data.rows), Kind.INT),
            Figure("Tokens", sum(r[4] for r in data.rows), Kind.INT),
        ),
        (
            Section(
                f"By {f.group}",
                text=text,
                charts=(
                    Chart(
                        f"Cost by {f.group}",
                        charts.breakdown([{"key": r[0], "cost_nanos": r[5]} for r in data.rows], f.group),
                    ),
                ),
                tables=(by_group,),
            ),
            Section(
                f"Per {f.granularity}",
                charts=(Chart(f"Cost per {f.granularity}", charts.cost_series(series_values, f.granularity)),),
                tables=(by_period,),
            ),
        ),
        filters=(*narrowed_to, ("group", f.group), ("granularity", f.granularity)),
    )
