"""Feature ROI for a month (pure): per feature, what it cost, how many requests and active users it
had, the cost per active user, how its adoption moved week by week, and retention: of the users active
in the month before, how many were active again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from reports import charts
from reports.model import Chart, Column, Figure, Kind, Report, Section, Table

__all__ = ["FeatureData", "FeatureUsage", "feature_roi_report"]


@dataclass(frozen=True, slots=True)
class FeatureUsage:
    feature: str
    cost_nanos: int
    requests: int
    tokens: int
    users: int
    retained: int  # users of the month before who came back
    users_before: int  # users of the month before


@dataclass(slots=True)
class FeatureData:
    org_id: str
    month: date
    last: date
    timezone: str
    generated_at: datetime
    features: list[FeatureUsage] = field(default_factory=list)
    weekly: list[tuple[str, date, int, int]] = field(default_factory=list)  # feature, week, users, requests


def _days_in_month(week: date, first: date, last: date) -> str:
    """ "7", or "partial: 3 of 7" for a week that begins before the month or ends after it."""
    days = (min(week + timedelta(days=6), last) - max(week, first)).days + 1
    return "7" if days == 7 else f"partial: {days} of 7"


def feature_roi_report(data: FeatureData) -> Report:
    total = sum(f.cost_nanos for f in data.features)
    rows = [
        (
            f.feature or "(none)",
            f.cost_nanos,
            f.requests,
            f.users,
            f.cost_nanos // f.users if f.users else None,
            f.cost_nanos // f.requests if f.requests else None,
            f.retained / f.users_before if f.users_before else None,
            f.users_before,
        )
        for f in sorted(data.features, key=lambda f: -f.cost_nanos)
    ]
    columns = (
        Column("feature", "Feature"),
        Column("cost", "Cost", Kind.USD, total=True),
        Column("requests", "Requests", Kind.INT, total=True),
        Column("users", "Active users", Kind.INT),
        Column("per_user", "Cost per active user", Kind.UNIT_USD),
        Column("per_request", "Cost per request", Kind.UNIT_USD),
        Column("retention", "Retention", Kind.PCT),
        Column("users_before", "Users the month before", Kind.INT),
    )
    weekly = Table(
        "adoption",
        "Active users per feature and week",
        (
            Column("feature", "Feature"),
            Column("week", "Week starting", Kind.DATE),
            Column("users", "Active users", Kind.INT),
            Column("requests", "Requests", Kind.INT),
            Column("days", "Days of the month"),
        ),
        [(f or "(none)", w, u, r, _days_in_month(w, data.month, data.last)) for f, w, u, r in data.weekly],
        "Weeks start on Monday in the org's time zone; a week the month starts or ends in is partial.",
    )
    adoption = [
        {"feature": f or "(none)", "week": w.isoformat(), "users": u, "requests": r} for f, w, u, r in data.weekly
    ]
    priced = [f for f in data.features if f.users]
    best = min(priced, key=lambda f: (f.cost_nanos // f.users, f.feature), default=None)
    return Report(
        "feature-roi",
        "Feature ROI",
        data.org_id,
        data.month,
        data.last,
        data.timezone,
        data.generated_at,
        (
            Figure("Cost of all features", total),
            Figure("Features in use", len(data.features), Kind.INT),
            Figure(
                "Cheapest per active user",
                best.cost_nanos // best.users if best else None,
                Kind.USD,
                best.feature if best else "",
            ),
        ),
        (
            Section(
                "Cost, use and retention",
                text="Retention: of the users who used a feature the month before, the share who used it again.",
                tables=(Table("features", "By feature", columns, rows),),
            ),
            Section(
                "Adoption",
                charts=(Chart("Active users per feature and week", charts.adoption(adoption)),),
                tables=(weekly,),
            ),
        ),
    )
