"""The report kinds and formats (pure): the one list of what can be generated, with the title, description,
period and console form of each. The CLI's choices, the API description, the Generate Report page, saved templates
and the scheduler all read it; ``reports.build`` pairs each name with how it is read and built."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.errors import SpendstreamError

__all__ = ["KINDS", "REPORT_KINDS", "Coverage", "Format", "ReportError", "ReportKind", "forms"]


class ReportError(SpendstreamError):
    """A report that cannot be made as asked; ``field`` names what is wrong."""


class Format(StrEnum):
    """A report's file format: one PDF, one XLSX, or one CSV per table."""

    PDF = "pdf"
    XLSX = "xlsx"
    CSV = "csv"


class Coverage(StrEnum):
    MONTH = "month"  # one calendar month in the org's time zone (default: the last complete one)
    RANGE = "range"  # a range of days with filters, grouping and granularity


@dataclass(frozen=True, slots=True)
class ReportKind:
    name: str
    title: str
    description: str
    coverage: Coverage
    form: str = ""  # the console form it is offered in, when it shares one (by ``option``) with another kind
    option: str = ""  # how that form's "As" list names it

    @property
    def form_key(self) -> str:
        return self.form or self.name


REPORT_KINDS: tuple[ReportKind, ...] = (
    ReportKind(
        "monthly",
        "Monthly usage summary",
        "Totals against the month before, cost per day, by department, model, provider and feature, top users, "
        "next month's forecast, budgets against actuals, alerts raised.",
        Coverage.MONTH,
    ),
    ReportKind(
        "chargeback",
        "Department chargeback",
        "Each department's own spend, its cost-centre code, and its share of the spend no department owns, by "
        "the org's chargeback rule (edited on the Generate Report page, through /api/v1/chargeback or in the "
        "budgets file).",
        Coverage.MONTH,
        option="the chargeback report",
    ),
    ReportKind(
        "ledger",
        "General-ledger journal",
        "The chargeback as journal lines for an accounting system: one debit per cost centre, one credit.",
        Coverage.MONTH,
        form="chargeback",
        option="a general-ledger journal",
    ),
    ReportKind(
        "feature-roi",
        "Feature ROI",
        "Per feature: cost, requests, active users, cost per active user, retention from the month before, "
        "weekly adoption.",
        Coverage.MONTH,
    ),
    ReportKind(
        "model-value",
        "Model value",
        "Per feature and model: cost per request and per 1k tokens, error rate, latency; and what cheaper models "
        "of comparable quality would have cost (an estimate).",
        Coverage.MONTH,
    ),
    ReportKind(
        "custom",
        "Custom report",
        "Cost and requests over any range of days, grouped by provider, model, feature, department, user, API key "
        "or allocation tag, per day, week or month, narrowed to one of each and to one API key or tag value.",
        Coverage.RANGE,
    ),
)
KINDS: tuple[str, ...] = tuple(k.name for k in REPORT_KINDS)


def forms() -> list[tuple[ReportKind, list[ReportKind]]]:
    """The Generate Report page's forms in order: each form's first kind, and every kind it offers."""
    grouped: dict[str, list[ReportKind]] = {}
    for kind in REPORT_KINDS:
        grouped.setdefault(kind.form_key, []).append(kind)
    return [(kinds[0], kinds) for kinds in grouped.values()]
