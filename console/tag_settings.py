"""An org's allocation tags from the console: Budget Settings > Allocation tags and ``/api/v1/tags``.

Everyone who reads the org sees which tags it declared (the filters offer them); owners and admins (the
budgets right) change them. A change checks the version it was given (If-Match), publishes the org's
record through the config topic (its other settings unchanged), and is audited with before and after.
The worker stores the new tags on events from then on; events stored earlier keep the tags of their day.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from bus.config_topic import ConfigCache
from console.access_store import AccessStore
from console.actions import require
from console.readmodels import Reader
from console.roles import Principal, Right
from schemas.allocation_tags import UNTAGGED, TagError, TagRule, parse_tag_rules, split_tag_scope, tag_bodies
from schemas.budgets import Budget, OrgConfig, ScopeKind
from schemas.config_records import org_record
from schemas.errors import PreconditionError

__all__ = ["TagSettings", "parse_tags_input", "tags_from_form", "tags_text", "tags_version", "tags_view"]

_FIELDS = {"tags", "trust_request_tags", "version"}


def tags_version(org: OrgConfig) -> str:
    body = json.dumps([tag_bodies(org.tags), org.trust_request_tags], sort_keys=True)
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:20] + '"'


def tags_view(org: OrgConfig) -> dict[str, Any]:
    """What the API answers (and takes back): the tags as the budgets file writes them."""
    return {
        "tags": tag_bodies(org.tags),
        "trust_request_tags": org.trust_request_tags,
        "version": tags_version(org),
    }


def parse_tags_input(data: Mapping[str, Any]) -> tuple[tuple[TagRule, ...], bool]:
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise TagError(unknown[0], "unknown field (tags, trust_request_tags)")
    trust = data.get("trust_request_tags", False)
    if not isinstance(trust, bool):
        raise TagError("trust_request_tags", "true or false")
    return parse_tag_rules(data.get("tags") or [], "tags"), trust


def tags_text(rules: tuple[TagRule, ...]) -> str:
    """The form's text: a tag a line, ``env: prod, staging; missing prod`` when it lists values."""
    lines = []
    for rule in rules:
        line = rule.key + (": " + ", ".join(rule.values) if rule.values else "")
        lines.append(line + (f"; missing {rule.missing}" if rule.missing != UNTAGGED else ""))
    return "\n".join(lines)


def tags_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The API's fields from the page's form (see :func:`tags_text`)."""
    tags: list[Any] = []
    for number, raw in enumerate(str(form.get("tags") or "").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        head, _, missing = line.partition(";")
        key, _, values = head.partition(":")
        spec: dict[str, Any] = {}
        if values.strip():
            spec["values"] = [v.strip() for v in values.split(",") if v.strip()]
        if missing.strip():
            word, _, value = missing.strip().partition(" ")
            if word != "missing" or not value.strip():
                raise TagError("tags", f"line {number}: after ';' write 'missing <value>'")
            spec["missing"] = value.strip()
        tags.append({key.strip(): spec} if spec else key.strip())
    return {"tags": tags, "trust_request_tags": form.get("trust_request_tags") == "on"}


def _keeps_budgeted(rules: tuple[TagRule, ...], budgets: list[Budget]) -> None:
    """A tag value with a budget stays declared (and listed, where the tag lists values): delete the budget
    first, or it would count nothing while it looks in force."""
    declared = {rule.key: rule for rule in rules}
    for budget in budgets:
        pair = split_tag_scope(budget.scope_id) if budget.scope is ScopeKind.TAG else None
        if pair is None:
            continue
        rule = declared.get(pair[0])
        if rule is None:
            raise TagError("tags", f"tag {pair[0]!r} has the budget {budget.key}: delete the budget first")
        if rule.values and pair[1] not in (*rule.values, rule.missing):
            raise TagError(f"tags.{rule.key}.values", f"{pair[1]!r} has the budget {budget.key}: keep it listed")


class TagSettings:
    def __init__(self, reader: Reader, access: AccessStore) -> None:
        self.reader, self.access = reader, access

    @property
    def config(self) -> ConfigCache:
        return self.reader.config

    def view(self, principal: Principal) -> dict[str, Any]:
        require(principal, Right.READ)
        return tags_view(self.reader.org(principal))

    def save(self, principal: Principal, data: Mapping[str, Any], if_match: str | None) -> dict[str, Any]:
        """Replace the org's declared tags and whether a request may name a capped tag value."""
        require(principal, Right.EDIT_BUDGETS)
        rules, trust = parse_tags_input(data)
        with self.config.edit_lock:
            state = self.config.state(fresh=True)
            org = state.orgs.get(principal.org_id, OrgConfig(principal.org_id))
            if if_match is not None and if_match != tags_version(org):
                raise PreconditionError("version", "the tags were changed by someone else; reload and try again")
            _keeps_budgeted(rules, [b for b in state.budgets.values() if b.org_id == principal.org_id])
            changed = dataclasses.replace(org, tags=rules, trust_request_tags=trust)
            self.config.publish([org_record(changed)])
        before, after = tags_view(org), tags_view(changed)
        before.pop("version")
        after.pop("version")
        self.access.audit(principal.org_id, principal.name, "tags.save", "tags", before, after)
        return tags_view(changed)
