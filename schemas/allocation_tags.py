"""Allocation tags (pure): the metadata keys an org declares to allocate its spend by (project, customer, env).

An event's metadata is the caller's free-form map; a declared tag is what finance groups, filters and charges
by. Each declared tag takes a value on every event stored after the declaration: the event's metadata value
when it follows the id rules (and is one of the allowed values, when the tag lists them), otherwise the tag's
``missing`` value, ``(untagged)`` unless the org names another. So a grouping by a tag always adds up to the
org's total, and an invented value cannot open a row of its own where the values are listed.

In the budgets file::

    orgs:
      acme:
        tags: [project, customer, {env: {values: [prod, staging], missing: prod}}]
        trust_request_tags: false
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.errors import SpendstreamError
from schemas.events import ID_PATTERN

__all__ = [
    "MAX_TAGS",
    "TAG_KEY_PATTERN",
    "UNTAGGED",
    "TagError",
    "TagRule",
    "cap_tags",
    "parse_tag_rules",
    "split_tag_scope",
    "tag_bodies",
    "tag_values",
]

MAX_TAGS = 8
MAX_VALUES = 1000
UNTAGGED = "(untagged)"
TAG_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,31}(?![\s\S])"
"""Lower-case, as metadata keys are matched exactly: ``Project`` and ``project`` would be two tags."""
_KEY = re.compile(TAG_KEY_PATTERN)
_VALUE = re.compile(ID_PATTERN)


class TagError(SpendstreamError):
    """A tag declaration that cannot be used; ``field`` names it."""


@dataclass(frozen=True, slots=True)
class TagRule:
    """One declared tag: its metadata key, the values it may take (none listed: any id), and what an event
    with a missing, malformed or unlisted value is charged to."""

    key: str
    values: tuple[str, ...] = ()
    missing: str = UNTAGGED

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not _KEY.fullmatch(self.key):
            raise TagError("tags", f"{str(self.key)[:40]!r}: a tag is 1-32 of a-z 0-9 _, starting with a letter")
        if len(self.values) > MAX_VALUES:
            raise TagError(f"tags.{self.key}.values", f"at most {MAX_VALUES} values")
        for value in self.values:
            if not isinstance(value, str) or not _VALUE.fullmatch(value):
                raise TagError(f"tags.{self.key}.values", f"{str(value)[:40]!r} does not follow the id rules")
        if len(set(self.values)) != len(self.values):
            raise TagError(f"tags.{self.key}.values", "a value is listed twice")
        if self.missing != UNTAGGED and not _VALUE.fullmatch(self.missing):
            raise TagError(f"tags.{self.key}.missing", f"{self.missing[:40]!r} does not follow the id rules")

    def value_of(self, metadata: Mapping[str, str]) -> str:
        value = metadata.get(self.key)
        if value is None or not _VALUE.fullmatch(value) or (self.values and value not in self.values):
            return self.missing
        return value

    def body(self) -> str | dict[str, Any]:
        if not self.values and self.missing == UNTAGGED:
            return self.key
        spec: dict[str, Any] = {}
        if self.values:
            spec["values"] = list(self.values)
        if self.missing != UNTAGGED:
            spec["missing"] = self.missing
        return {self.key: spec}


def tag_values(rules: Sequence[TagRule], metadata: Mapping[str, str]) -> dict[str, str]:
    """Every declared tag's value for an event with this metadata."""
    return {rule.key: rule.value_of(metadata) for rule in rules}


def cap_tags(values: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """The (key, value) pairs a request spends in for caps: every declared tag's value but ``(untagged)``,
    which no budget can name. A tag's own ``missing`` value is a value like any other (``env=prod``)."""
    if not values:
        return ()
    return tuple((key, value) for key, value in values.items() if value != UNTAGGED)


def split_tag_scope(scope_id: str) -> tuple[str, str] | None:
    """``project=apollo`` -> (project, apollo); None when it is not a tag key and an id joined by ``=``."""
    key, sep, value = scope_id.partition("=")
    if not sep or not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
        return None
    return key, value


def _rule(item: Any, where: str) -> TagRule:
    if isinstance(item, str):
        return TagRule(item)
    if not isinstance(item, dict) or len(item) != 1:
        raise TagError(where, "a tag name, or {name: {values: [...], missing: ...}}")
    ((key, spec),) = item.items()
    spec = spec or {}
    if not isinstance(spec, dict) or set(spec) - {"values", "missing"}:
        raise TagError(f"{where}.{key}", "only values and missing")
    values = spec.get("values") or []
    if not isinstance(values, list):
        raise TagError(f"{where}.{key}.values", "a list of values")
    missing = spec.get("missing", UNTAGGED)
    if not isinstance(missing, str):
        raise TagError(f"{where}.{key}.missing", "a value")
    return TagRule(str(key), tuple(values), missing)


def parse_tag_rules(spec: Any, where: str = "tags") -> tuple[TagRule, ...]:
    """The declared tags from the budgets file or a config record (a list of names or ``{name: {...}}``)."""
    if spec is None:
        return ()
    if not isinstance(spec, list):
        raise TagError(where, "a list of tags")
    if len(spec) > MAX_TAGS:
        raise TagError(where, f"at most {MAX_TAGS} tags")
    try:
        rules = tuple(_rule(item, f"{where}[{i}]") for i, item in enumerate(spec))
    except TagError as exc:
        field = exc.field if exc.field.startswith(where) else where + exc.field.removeprefix("tags")
        raise TagError(field, exc.reason) from None
    keys = [rule.key for rule in rules]
    if len(set(keys)) != len(keys):
        raise TagError(where, "a tag is declared twice")
    return rules


def tag_bodies(rules: Sequence[TagRule]) -> list[str | dict[str, Any]]:
    return [rule.body() for rule in rules]
