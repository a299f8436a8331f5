"""Which report a request or a saved template asks for, read and built: the one path that the CLI, the
console and the scheduler take from (kind, month or filters) to a :class:`Report`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta

from reports.custom import custom_report
from reports.data import MONTHLY_KINDS, Store, custom_data, monthly_data
from reports.filters import parse_filter, parse_month
from reports.generate import ReportError
from reports.model import Report
from reports.monthly import monthly_report
from schemas.budgets import OrgConfig
from schemas.config_records import ConfigState
from schemas.report_templates import KINDS, ReportTemplate

__all__ = ["build_report", "template_params"]


def build_report(
    store: Store,
    state: ConfigState,
    org_id: str,
    kind: str,
    today: date,
    now: datetime,
    params: Mapping[str, str] | None = None,
) -> Report:
    """``kind`` for ``org_id``: a monthly kind for ``params['month']`` (default: the month before ``today``,
    the org's date), a custom report for the filters in ``params``. Raises ReportError or FilterError."""
    params = params or {}
    if kind == "monthly":
        return monthly_report(monthly_data(store, state, org_id, parse_month(params.get("month"), today), now))
    if kind in MONTHLY_KINDS:
        read, build = MONTHLY_KINDS[kind]
        return build(read(store, state, org_id, parse_month(params.get("month"), today), now))
    if kind != "custom":
        raise ReportError("kind", f"{kind!r}: one of {', '.join(KINDS)}")
    timezone = state.orgs.get(org_id, OrgConfig(org_id)).timezone
    return custom_report(custom_data(store, org_id, parse_filter(params, timezone, today), now))


def template_params(template: ReportTemplate, day: date) -> dict[str, str]:
    """What ``template`` covers when it runs on ``day`` (the org's date): a monthly kind, the month before;
    a custom report, its ``days`` up to the day before."""
    if template.kind != "custom":
        return {"month": f"{parse_month(None, day):%Y-%m}"}
    params = dict(template.filters)
    params.update(
        {"from": (day - timedelta(days=template.days)).isoformat(), "to": (day - timedelta(days=1)).isoformat()}
    )
    return params
