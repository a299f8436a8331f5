"""What finance changes beside the reports, one code path for the page and the API: saved report
templates (save, pause and resume, run now, delete) and the org's chargeback rule. Owners, admins and
finance (the reports right); each change checks the version it was given (If-Match), publishes through
the config topic as budgets do, and audits who, when, before and after."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bus.config_topic import ConfigCache
from console.access_store import AccessStore
from console.actions import require
from console.readmodels import Reader
from console.report_settings import (
    chargeback_version,
    chargeback_view,
    parse_chargeback_input,
    template_from_input,
    template_version,
    template_view,
)
from console.roles import Principal, Right
from reports.build import template_params
from reports.filters import FilterError, parse_filter
from schemas.budgets import OrgConfig
from schemas.config_records import ConfigRecord, org_record, template_record
from schemas.errors import ConflictError, NotFoundError, PreconditionError
from schemas.report_templates import ReportTemplate, TemplateError

__all__ = ["ReportActions"]

_CHANGED = "changed by someone else; reload and try again"


class ReportActions:
    def __init__(self, reader: Reader, access: AccessStore) -> None:
        self.reader, self.access = reader, access

    @property
    def config(self) -> ConfigCache:
        return self.reader.config

    def _zone(self, principal: Principal) -> str:
        return self.reader.org(principal).timezone

    def templates(self, principal: Principal) -> list[dict[str, Any]]:
        require(principal, Right.REPORTS)
        zone = self._zone(principal)
        state = self.config.state()
        return [template_view(t, zone) for (org, _), t in sorted(state.reports.items()) if org == principal.org_id]

    def template(self, principal: Principal, name: str) -> ReportTemplate:
        require(principal, Right.REPORTS)
        found = self.config.state().reports.get((principal.org_id, name))
        if found is None:
            raise NotFoundError("name", f"no template {name[:64]!r}")
        return found

    def view(self, principal: Principal, template: ReportTemplate) -> dict[str, Any]:
        return template_view(template, self._zone(principal))

    def save_template(
        self, principal: Principal, name: str, data: Mapping[str, Any], if_match: str | None, creating: bool
    ) -> ReportTemplate:
        """Create (``creating``: 409 if it exists) or replace a template; ``if_match``: the version it was
        read at, None to replace whatever is there."""
        require(principal, Right.REPORTS)
        with self.config.edit_lock:
            state = self.config.state(fresh=True)
            current = state.reports.get((principal.org_id, name))
            template = template_from_input(principal.org_id, name, data, datetime.now(UTC), current)
            _check_filters(template, state.orgs.get(principal.org_id, OrgConfig(principal.org_id)))
            if creating and current is not None:
                raise ConflictError("name", f"template {name} exists already; change it instead")
            if if_match is not None and if_match != template_version(current):
                raise PreconditionError("version", f"the template was {_CHANGED}")
            self.config.publish([template_record(template)])
        action = "report.template.create" if current is None else "report.template.update"
        if current is not None and current.paused != template.paused:
            action = "report.template.pause" if template.paused else "report.template.resume"
        self._audit(principal, action, name, current, template)
        return template

    def set_paused(self, principal: Principal, name: str, paused: bool, if_match: str | None) -> ReportTemplate:
        current = self.template(principal, name)
        body = {**self.view(principal, current), "paused": paused}
        return self.save_template(principal, name, body, if_match, False)

    def run_now(self, principal: Principal, name: str) -> ReportTemplate:
        """Ask the report scheduler for one run of the template now (paused or not)."""
        require(principal, Right.REPORTS)
        with self.config.edit_lock:
            current = self.config.state(fresh=True).reports.get((principal.org_id, name))
            if current is None:
                raise NotFoundError("name", f"no template {name[:64]!r}")
            asked = dataclasses.replace(current, run_requested_at=datetime.now(UTC).replace(microsecond=0))
            self.config.publish([template_record(asked)])
        self._audit(principal, "report.template.run", name, current, asked)
        return asked

    def delete_template(self, principal: Principal, name: str, if_match: str | None) -> None:
        require(principal, Right.REPORTS)
        with self.config.edit_lock:
            current = self.config.state(fresh=True).reports.get((principal.org_id, name))
            if current is None:
                raise NotFoundError("name", f"no template {name[:64]!r}")
            if if_match is not None and if_match != template_version(current):
                raise PreconditionError("version", f"the template was {_CHANGED}")
            self.config.publish([ConfigRecord(f"report/{principal.org_id}/{name}", None)])
        self._audit(principal, "report.template.delete", name, current, None)

    def chargeback(self, principal: Principal) -> dict[str, Any]:
        require(principal, Right.REPORTS)
        return chargeback_view(self.reader.org(principal).chargeback)

    def save_chargeback(self, principal: Principal, data: Mapping[str, Any], if_match: str | None) -> dict[str, Any]:
        """Replace the org's cost centres, unallocated rule and accounts (the rest of its settings stay)."""
        require(principal, Right.REPORTS)
        chargeback = parse_chargeback_input(data)
        with self.config.edit_lock:
            org = self.config.state(fresh=True).orgs.get(principal.org_id, OrgConfig(principal.org_id))
            if if_match is not None and if_match != chargeback_version(org.chargeback):
                raise PreconditionError("version", f"the chargeback rule was {_CHANGED}")
            self.config.publish([org_record(dataclasses.replace(org, chargeback=chargeback))])
        before = org.chargeback.body() if org.chargeback else None
        self.access.audit(principal.org_id, principal.name, "chargeback.save", "chargeback", before, chargeback.body())
        return chargeback_view(chargeback)

    def _audit(
        self, principal: Principal, action: str, name: str, before: ReportTemplate | None, after: ReportTemplate | None
    ) -> None:
        zone = self._zone(principal)
        self.access.audit(
            principal.org_id,
            principal.name,
            action,
            name,
            template_view(before, zone) if before else None,
            template_view(after, zone) if after else None,
        )


def _check_filters(template: ReportTemplate, org: OrgConfig) -> None:
    """A custom template's filters as its run will read them (a group or label filter on a tag the org has
    not declared is refused now, not at the first run)."""
    if not template.filters:
        return
    today = datetime.now(UTC).date()
    try:
        parse_filter(template_params(template, today), org.timezone, today, [rule.key for rule in org.tags])
    except FilterError as exc:
        raise TemplateError(f"filters.{exc.field}", exc.reason) from None
