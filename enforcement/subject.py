"""Who spends (pure): a :class:`Subject` is the chain org -> department -> user, plus the feature, model,
provider, API key and allocation tag values of a request, checked so that every id can be part of a Redis
key and a scope."""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.allocation_tags import MAX_TAGS, TAG_KEY_PATTERN
from schemas.errors import SpendstreamError
from schemas.events import ID_PATTERN, NAME_PATTERN

__all__ = ["Subject", "SubjectError"]

_ID = re.compile(ID_PATTERN)
_NAME = re.compile(NAME_PATTERN)
_TAG_KEY = re.compile(TAG_KEY_PATTERN)


class SubjectError(SpendstreamError):
    """A subject, id or amount the caps cannot meter; ``field`` names it."""


@dataclass(frozen=True, slots=True)
class Subject:
    """Who spends: the chain org -> department -> user, plus feature, model, provider, API key and the
    values of the org's allocation tags (``(("project", "apollo"),)``: each is the scope ``tag/project=apollo``)."""

    org_id: str
    user_id: str
    department_id: str | None = None
    feature: str | None = None
    model: str | None = None
    provider: str | None = None
    api_key_id: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("org_id", "user_id", "department_id", "feature", "api_key_id"):
            value = getattr(self, name)
            if value is None and name not in ("org_id", "user_id"):
                continue
            if not isinstance(value, str) or not _ID.fullmatch(value):
                raise SubjectError(name, "must be 1-128 of A-Z a-z 0-9 _ . @ + - (no ':', '{', '}' or spaces)")
        for name in ("model", "provider"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not _NAME.fullmatch(value)):
                raise SubjectError(name, "must be 1-200 of A-Z a-z 0-9 _ . : / @ + -")
        if not isinstance(self.tags, tuple) or len(self.tags) > MAX_TAGS:
            raise SubjectError("tags", f"at most {MAX_TAGS} (tag, value) pairs")
        for pair in self.tags:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise SubjectError("tags", "(tag, value) pairs of strings")
            if not _TAG_KEY.fullmatch(pair[0]):
                raise SubjectError(f"tags.{pair[0][:40]}", "a tag is 1-32 of a-z 0-9 _, starting with a letter")
            if not _ID.fullmatch(pair[1]):
                raise SubjectError(f"tags.{pair[0]}", "must be 1-128 of A-Z a-z 0-9 _ . @ + - (no ':' or spaces)")
        if len({key for key, _ in self.tags}) != len(self.tags):
            raise SubjectError("tags", "a tag is given twice")

    @classmethod
    def unchecked(
        cls,
        org_id: str,
        user_id: str,
        department_id: str | None,
        feature: str | None,
        model: str | None,
        provider: str | None,
        api_key_id: str | None = None,
        tags: tuple[tuple[str, str], ...] = (),
    ) -> Subject:
        """A subject from fields already validated (a decoded UsageEvent): skips the checks on the hot path."""
        subject = object.__new__(cls)
        put = object.__setattr__  # frozen: set as __init__ does, one field after another (a loop costs twice)
        put(subject, "org_id", org_id)
        put(subject, "user_id", user_id)
        put(subject, "department_id", department_id)
        put(subject, "feature", feature)
        put(subject, "model", model)
        put(subject, "provider", provider)
        put(subject, "api_key_id", api_key_id)
        put(subject, "tags", tags)
        return subject

    def scopes(self) -> list[str]:
        """``<kind>/<id>`` of every scope the subject spends in, in chain order."""
        scopes = [f"org/{self.org_id}"]
        if self.department_id:
            scopes.append(f"department/{self.department_id}")
        scopes.append(f"user/{self.user_id}")
        if self.feature:
            scopes.append(f"feature/{self.feature}")
        if self.model:
            scopes.append(f"model/{self.model}")
        if self.provider:
            scopes.append(f"provider/{self.provider}")
        if self.api_key_id:
            scopes.append(f"apikey/{self.api_key_id}")
        for key, value in self.tags:
            scopes.append(f"tag/{key}={value}")
        return scopes
