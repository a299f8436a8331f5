"""Cost analysis, Usage patterns and Forecasts: pages, their CSV downloads and their API, on one
:class:`console.analyst.Analyst`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from console.access_store import Session
from console.analyst import Analyst
from console.roles import Principal
from console.web import Web, json_response
from reports import charts
from reports.filters import GROUPS, CostFilter, parse_filter
from reports.model import Column, Kind
from reports.render_csv import csv_lines
from schemas.params import ParameterError

__all__ = ["AnalysisPages"]

CSV_TABLES = ("breakdown", "series")

COST_COLUMNS = (
    Column("key", "Key"),
    Column("requests", "Requests", Kind.INT),
    Column("input_tokens", "Input tokens", Kind.INT),
    Column("output_tokens", "Output tokens", Kind.INT),
    Column("tokens", "All tokens", Kind.INT),
    Column("cost", "Cost", Kind.USD),
    *(Column(field.removesuffix("_nanos"), f"Cost of {name}", Kind.USD) for field, name in charts.TYPE_NAMES.items()),
)


class AnalysisPages:
    def __init__(self, web: Web) -> None:
        self.web = web
        self.analyst = Analyst(web.reader)

    def _filter(self, request: Request, principal: Principal) -> CostFilter:
        org = self.web.reader.org(principal)
        today = datetime.now(ZoneInfo(org.timezone)).date()
        return parse_filter(dict(request.query_params), org.timezone, today, self._tags(principal))

    def _tags(self, principal: Principal) -> list[str]:
        """The org's declared allocation tags: what a view may be grouped and narrowed by, besides the columns."""
        return [rule.key for rule in self.web.reader.org(principal).tags]

    async def costs_page(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        view = await run_in_threadpool(self.analyst.costs, principal, self._filter(request, principal))
        specs = {
            "series": charts.cost_series(view.series, view.filter.granularity),
            "breakdown": charts.type_breakdown(view.rows, view.filter.group),
        }
        tags = self._tags(principal)
        groups = [*GROUPS, *(f"tag:{key}" for key in tags)]
        context = {
            "v": view,
            "f": view.filter,
            "groups": groups,
            "tags": tags,
            "specs": specs,
            "type_names": charts.TYPE_NAMES,
        }
        return self.web.render(request, "costs.html", principal, session, context)

    async def costs_csv(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        view = await run_in_threadpool(self.analyst.costs, principal, self._filter(request, principal))
        table = request.query_params.get("table", "breakdown")
        if table not in CSV_TABLES:
            raise ParameterError("table", "breakdown or series")
        rows = view.series if table == "series" else view.rows
        f = view.filter
        # the file name comes from a fixed set of words and checked values, never from the request's text
        what = _file_part(f.group) if table == "breakdown" else f.granularity  # tag:project: no ":" in a name
        name = f"spendstream-{_file_part(principal.org_id)}-{table}-{what}"
        cells = [
            (
                r["key"], r["requests"], r["input_tokens"], r["output_tokens"], r["tokens"], r["cost_nanos"],
                *(r[field] for field in charts.TYPE_NAMES),
            )
            for r in rows
        ]  # fmt: skip
        bom = request.query_params.get("bom") == "1"
        return Response(
            "".join(csv_lines(COST_COLUMNS, cells, bom)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-{f.first:%Y-%m-%d}-{f.last:%Y-%m-%d}.csv"'},
        )

    async def patterns_page(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        view = await run_in_threadpool(self.analyst.patterns, principal, self._filter(request, principal))
        specs = {
            "heatmap": charts.heatmap(view.heatmap),
            "weekdays": charts.weekday_profile(view.weekdays),
            "trend": charts.weekly_trend(view.trend),
            "adoption": charts.adoption(view.adoption),
        }
        context = {"v": view, "f": view.filter, "tags": self._tags(principal), "specs": specs}
        return self.web.render(request, "patterns.html", principal, session, context)

    async def forecasts_page(
        self, request: Request, principal: Principal, session: Session | None, form: Mapping[str, Any]
    ) -> Response:
        rows = await run_in_threadpool(self.analyst.forecasts, principal)
        specs = {"cones": charts.forecast_cones(rows)} if rows else {}
        return self.web.render(request, "forecasts.html", principal, session, {"rows": rows, "specs": specs})

    # -- API ------------------------------------------------------------------------------------------------------

    async def api_costs(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        view = await run_in_threadpool(self.analyst.costs, principal, self._filter(request, principal))
        return json_response(asdict(view))

    async def api_patterns(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        view = await run_in_threadpool(self.analyst.patterns, principal, self._filter(request, principal))
        return json_response(asdict(view))

    async def api_forecasts(self, request: Request, principal: Principal, body: dict[str, Any]) -> Response:
        return json_response({"items": await run_in_threadpool(self.analyst.forecasts, principal)})


def _file_part(text: str) -> str:
    """An id as a file-name part: an org id may hold '@' and '+', which some tools mangle."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)
