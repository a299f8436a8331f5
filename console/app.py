"""The console's ASGI app: Admin > Billing pages and the admin API under ``/api/v1``, one code path
(:mod:`console.readmodels` reads, :mod:`console.actions` changes), with routes from :mod:`console.pages`
and :mod:`console.api`.

Who is asking comes from the session cookie or an API token (``Authorization: Bearer``), never from
the request: the org of every read and write is the principal's.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from console.analysis_pages import AnalysisPages
from console.api import Api
from console.export_api import Exports
from console.http_guard import HttpGuard
from console.pages import Pages
from console.report_api import ReportApi
from console.report_pages import ReportPages
from console.sso_pages import SsoPages
from console.web import Web, error_response

__all__ = ["create_app"]

HERE = Path(__file__).parent


def create_app(
    web: Web, sso: SsoPages, exports: Exports | None = None, max_body_bytes: int = 1 << 20, hsts: bool = False
) -> Starlette:
    pages, api, analysis, reports = Pages(web, sso), Api(web), AnalysisPages(web), ReportPages(web)
    report_api = ReportApi(reports.settings)
    routes = [
        Route("/", lambda request: RedirectResponse("/billing", 303)),
        Route("/healthz", api.health),
        Route("/login", pages.login_page, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/login/sso", sso.start, methods=["GET"]),
        Route("/login/sso/callback", sso.callback, methods=["GET"]),
        Route("/logout", web.page(pages.logout), methods=["POST"]),
        Route("/billing", web.page(pages.overview_page)),
        Route("/billing/budgets", web.page(pages.budgets_page), methods=["GET"]),
        Route("/billing/budgets", web.page(pages.budgets_save), methods=["POST"]),
        Route("/billing/budgets/channels", web.page(pages.channels_save), methods=["POST"]),
        Route("/billing/budgets/delete", web.page(pages.budgets_delete), methods=["POST"]),
        Route("/billing/budgets/tags", web.page(pages.tags_save), methods=["POST"]),
        Route("/billing/costs", web.page(analysis.costs_page)),
        Route("/billing/costs.csv", web.page(analysis.costs_csv)),
        Route("/billing/patterns", web.page(analysis.patterns_page)),
        Route("/billing/forecasts", web.page(analysis.forecasts_page)),
        Route("/billing/reports", web.page(reports.reports_page), methods=["GET", "POST"]),
        Route("/billing/reports/templates", web.page(reports.templates_save), methods=["POST"]),
        Route("/billing/reports/chargeback", web.page(reports.chargeback_save), methods=["POST"]),
        Route("/billing/alerts", web.page(pages.alerts_page)),
        Route("/billing/access", web.page(pages.access_page), methods=["GET", "POST"]),
        Route("/static/vega.js", pages.vega),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        Route("/api/v1/openapi.json", api.openapi),
        Route("/api/v1/me", web.api(api.api_me)),
        Route("/api/v1/overview", web.api(api.api_overview)),
        Route("/api/v1/budgets", web.api(api.api_budgets), methods=["GET", "POST"]),
        Route("/api/v1/budgets/preview", web.api(api.api_preview), methods=["POST"]),
        Route("/api/v1/budgets/{key:path}", web.api(api.api_budget), methods=["GET", "PUT", "PATCH", "DELETE"]),
        Route("/api/v1/channels", web.api(api.api_channels)),
        Route("/api/v1/channels/{name}", web.api(api.api_channel), methods=["PUT", "DELETE"]),
        Route("/api/v1/routing", web.api(api.api_routing), methods=["PUT"]),
        Route("/api/v1/costs", web.api(analysis.api_costs)),
        Route("/api/v1/patterns", web.api(analysis.api_patterns)),
        Route("/api/v1/forecasts", web.api(analysis.api_forecasts)),
        Route("/api/v1/reports", web.api(reports.api_reports), methods=["POST"]),
        Route("/api/v1/reports/runs", web.api(reports.api_runs)),
        Route("/api/v1/reports/runs/{run_id}/files/{name}", web.api(reports.api_run_file)),
        Route("/api/v1/reports/templates", web.api(report_api.templates), methods=["GET", "POST"]),
        Route("/api/v1/reports/templates/{name}", web.api(report_api.template), methods=["GET", "PUT", "DELETE"]),
        Route("/api/v1/reports/templates/{name}/run", web.api(report_api.run), methods=["POST"]),
        Route("/api/v1/chargeback", web.api(report_api.chargeback), methods=["GET", "PUT"]),
        Route("/api/v1/tags", web.api(api.api_tags), methods=["GET", "PUT"]),
        Route("/api/v1/alerts", web.api(api.api_alerts)),
        Route("/api/v1/audit", web.api(api.api_audit)),
        Route("/api/v1/sso", web.api(sso.api), methods=["GET", "PUT", "DELETE"]),
    ]
    if exports is not None:
        routes += [
            Route("/api/v1/export/focus", web.api(exports.focus)),
            Route("/api/v1/export/closes", web.api(exports.closes), methods=["GET", "POST"]),
        ]
    guard = Middleware(HttpGuard, max_body_bytes=max_body_bytes, hsts=hsts)
    return Starlette(routes=routes, middleware=[guard], exception_handlers={HTTPException: _http_error})


async def _http_error(request: Request, exc: Exception) -> Response:
    """What the router and the body limit answer (no route, a method not allowed, a body too large): the
    API's error shape under ``/api/``, a short text elsewhere."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if request.url.path.startswith("/api/"):
        field = {404: "path", 405: "method", 413: "body"}.get(exc.status_code, "request")
        return error_response(exc.status_code, field, str(exc.detail), headers)
    return PlainTextResponse(str(exc.detail), exc.status_code, headers=headers)
