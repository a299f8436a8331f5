"""Which report a request or a saved template asks for, read and built: the one path that the CLI, the
console and the scheduler take from (kind, month or filters) to a :class:`Report`. ``BUILDERS`` pairs each
kind of ``schemas.report_kinds`` with how its data is read and how the report is built from it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from reports.chargeback import chargeback_report
from reports.custom import custom_report
from reports.data import chargeback_data, custom_data, feature_data, model_data, monthly_data
from reports.feature_roi import feature_roi_report
from reports.files import ReportError
from reports.filters import parse_filter, parse_month
from reports.ledger import ledger_report
from reports.model import Report
from reports.model_value import model_value_report
from reports.monthly import monthly_report
from schemas.budgets import OrgConfig
from schemas.config_records import ConfigState
from schemas.report_kinds import KINDS, REPORT_KINDS, Coverage
from schemas.report_templates import ReportTemplate
from sinks.queries import ClickHouseReader

__all__ = ["BUILDERS", "build_report", "template_params"]

MonthReader = Callable[[ClickHouseReader, ConfigState, str, date, datetime], Any]

BUILDERS: dict[str, tuple[MonthReader, Callable[[Any], Report]]] = {
    "monthly": (monthly_data, monthly_report),
    "chargeback": (chargeback_data, chargeback_report),
    "ledger": (chargeback_data, ledger_report),
    "feature-roi": (feature_data, feature_roi_report),
    "model-value": (model_data, model_value_report),
}
"""Each month kind: how its data is read, and how the report is built from it (custom reads a filter)."""

_COVERAGE = {k.name: k.coverage for k in REPORT_KINDS}


def build_report(
    store: ClickHouseReader,
    state: ConfigState,
    org_id: str,
    kind: str,
    today: date,
    now: datetime,
    params: Mapping[str, str] | None = None,
) -> Report:
    """``kind`` for ``org_id``: a month kind for ``params['month']`` (default: the month before ``today``,
    the org's date), a custom report for the filters in ``params``. Raises ReportError or FilterError."""
    params = params or {}
    coverage = _COVERAGE.get(kind)
    if coverage is None:
        raise ReportError("kind", f"{kind!r}: one of {', '.join(KINDS)}")
    if coverage is Coverage.MONTH:
        read, build = BUILDERS[kind]
        return build(read(store, state, org_id, parse_month(params.get("month"), today), now))
    org = state.orgs.get(org_id, OrgConfig(org_id))
    f = parse_filter(params, org.timezone, today, [rule.key for rule in org.tags])
    return custom_report(custom_data(store, org_id, f, now))


def template_params(template: ReportTemplate, day: date) -> dict[str, str]:
    """What ``template`` covers when it runs on ``day`` (the org's date): a month kind, the month before;
    a custom report, its ``days`` up to the day before."""
    if _COVERAGE[template.kind] is Coverage.MONTH:
        return {"month": f"{parse_month(None, day):%Y-%m}"}
    params = dict(template.filters)
    params.update(
        {"from": (day - timedelta(days=template.days)).isoformat(), "to": (day - timedelta(days=1)).isoformat()}
    )
    return params
