"""What the LiteLLM hook decides, without LiteLLM: who a request is, and its UsageEvent. Pure.

Identity comes from the proxy's authenticated key, never from what the caller writes in the request:

* **org**: the key's ``org_id``; else ``spendstream_org_id`` in the key's (or its team's) metadata,
  which only the proxy's admin sets; else ``SPENDSTREAM_LITELLM__DEFAULT_ORG`` when the deployment
  opts in (one org); else the request is refused (403).
* **department**: the key's ``team_id``; else ``spendstream_department_id`` in the key's metadata.
* **user**: the key's ``user_id``; else, when ``SPENDSTREAM_LITELLM__TRUST_REQUEST_USER`` opts in,
  the request's ``user``; else ``key-`` and the start of the key's hash (the key is the spender).
* **feature**: ``spendstream_feature`` in the key's metadata pins it; else the request's
  ``metadata.spendstream_feature``; else ``chat``. A feature budget is only as firm as the key pins it.
* **api_key_id**: the key's hash as LiteLLM stores it (its ``token``), never the key.
* **allocation tags** (the org's declared tags, such as ``project``): the key's metadata, else its team's,
  which only the proxy's admin sets. The request's ``metadata`` (and, for a tag named ``customer``, the
  request's ``user``: LiteLLM's end user, the org's own customer) fills a tag the key leaves open only when
  the org sets ``trust_request_tags``, since a caller could otherwise pick an uncapped project. The values go
  into the event's metadata, so the reserve checks the very tag budgets the stream counts.

A request whose ``metadata`` names an org, department or user (``spendstream_org_id``,
``spendstream_department_id``, ``spendstream_user_id``) other than its key's is refused with 403,
and one naming the same is accepted: the metadata is never believed, only compared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.budgets import OrgConfig
from schemas.errors import SpendstreamError
from schemas.events import ID_PATTERN, UsageEvent
from schemas.money import round_nanos

__all__ = [
    "Identity",
    "IdentityError",
    "KeyView",
    "Tokens",
    "identity",
    "occurred_at",
    "prompt_tokens_bound",
    "request_tags",
    "tokens_of",
    "usage_event",
]

BYTES_PER_TOKEN = 3  # tokenizers average ~4 bytes of English and ~3 of CJK text a token: 3 errs high
TOKENS_PER_MESSAGE = 4  # the role and the chat template's separators

_VALUE = re.compile(ID_PATTERN)
_STANDARD_TIERS = frozenset({"", "auto", "default", "standard", "on_demand"})


class IdentityError(SpendstreamError):
    """A request that may not run as it is; ``field`` names what refused it, ``status`` is the HTTP answer."""

    status = 403


@dataclass(frozen=True, slots=True)
class KeyView:
    """What the hook reads of LiteLLM's ``UserAPIKeyAuth``."""

    token: str | None
    org_id: str | None
    team_id: str | None
    user_id: str | None
    metadata: Mapping[str, Any]
    team_metadata: Mapping[str, Any]

    @classmethod
    def of(cls, key: Any) -> KeyView:
        def text(name: str) -> str | None:
            value = getattr(key, name, None)
            return str(value) if value else None

        def mapping(name: str) -> Mapping[str, Any]:
            value = getattr(key, name, None)
            return value if isinstance(value, Mapping) else {}

        return cls(
            text("token"),
            text("org_id"),
            text("team_id"),
            text("user_id"),
            mapping("metadata"),
            mapping("team_metadata"),
        )


@dataclass(frozen=True, slots=True)
class Identity:
    org_id: str
    department_id: str | None
    user_id: str
    feature: str
    api_key_id: str | None
    tags: tuple[tuple[str, str], ...] = ()  # the declared tags' values as found (see request_tags)


def request_tags(key: KeyView, body: Mapping[str, Any], org: OrgConfig | None) -> tuple[tuple[str, str], ...]:
    """The org's declared tags a request carries, by the rules of the module's notes. A value that does not
    follow the id rules is left out (the stream charges the tag's missing value), so the event stays valid."""
    if org is None or not org.tags:
        return ()
    request_meta = body.get("metadata")
    request_meta = request_meta if isinstance(request_meta, Mapping) else {}
    found = []
    for rule in org.tags:
        value = key.metadata.get(rule.key) or key.team_metadata.get(rule.key)
        if value is None and org.trust_request_tags:
            value = request_meta.get(rule.key) or (body.get("user") if rule.key == "customer" else None)
        if isinstance(value, str | int) and not isinstance(value, bool) and _VALUE.fullmatch(str(value)):
            found.append((rule.key, str(value)))
    return tuple(found)


def _from_meta(key: KeyView, name: str) -> str | None:
    value = key.metadata.get(name) or key.team_metadata.get(name)
    return str(value) if value else None


def identity(
    key: KeyView, body: Mapping[str, Any], default_org: str = "", trust_request_user: bool = False
) -> Identity:
    """The subject a request spends as (see the module's notes); :class:`IdentityError` when refused."""
    org = key.org_id or _from_meta(key, "spendstream_org_id") or default_org
    if not org:
        raise IdentityError(
            "key.org_id",
            "the key carries no org (set the key's org, or spendstream_org_id in its metadata)",
        )
    department = key.team_id or _from_meta(key, "spendstream_department_id")
    request_meta = body.get("metadata")
    request_meta = request_meta if isinstance(request_meta, Mapping) else {}
    user = key.user_id
    if not user and trust_request_user and isinstance(body.get("user"), str) and body["user"]:
        user = body["user"]
    if not user:
        user = f"key-{(key.token or 'unknown')[:16]}"
    for name, actual in (
        ("spendstream_org_id", org),
        ("spendstream_department_id", department),
        ("spendstream_user_id", user),
    ):
        claimed = request_meta.get(name)
        if claimed is not None and str(claimed) != (actual or ""):
            raise IdentityError(f"metadata.{name}", f"the request names {claimed!r}, but its key spends as {actual!r}")
    pinned = _from_meta(key, "spendstream_feature")
    asked = request_meta.get("spendstream_feature")
    if pinned and asked and str(asked) != pinned:
        raise IdentityError(
            "metadata.spendstream_feature",
            f"the key is pinned to feature {pinned!r}, the request names {asked!r}",
        )
    feature = pinned or (str(asked) if asked else "chat")
    return Identity(org, department, user, feature, key.token)


@dataclass(frozen=True, slots=True)
class Tokens:
    """Disjoint token counts, as the UsageEvent bills them."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    reasoning: int


def _text_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, Mapping):
        return sum(_text_bytes(v) for k, v in value.items() if k not in ("image_url", "input_audio"))
    if isinstance(value, list | tuple):
        return sum(_text_bytes(v) for v in value)
    return 0


def prompt_tokens_bound(messages: Any) -> int:
    """How many prompt tokens ``messages`` may take, from their UTF-8 size alone: an estimate that errs
    high (for the reservation, which the real usage replaces), without running a tokenizer (which costs
    ~25 us for a line and ~0.4 ms for 10 KB of prompt, on every request)."""
    if not isinstance(messages, list):
        return 0
    size = sum(
        _text_bytes(m.get("content")) + _text_bytes(m.get("tool_calls")) for m in messages if isinstance(m, Mapping)
    )
    return -(-size // BYTES_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)


def read(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)``, without a pydantic model's path for a missing attribute (it raises and
    catches an exception: 2 us, several times an event). A model's fields and extras are read directly; a
    name that is neither, nor a class attribute (a property), is missing. Other objects use ``getattr``."""
    cls = type(obj)
    if not _is_model(cls) or name.startswith("_"):
        return getattr(obj, name, None)
    found = obj.__dict__.get(name, _MISSING)
    if found is not _MISSING:
        return found
    extra = obj.__pydantic_extra__
    if extra and name in extra:
        return extra[name]
    return getattr(obj, name, None) if _on_class(cls, name) else None


_MISSING = object()


_MODELS: dict[type, bool] = {}  # class -> a pydantic model
_ON_CLASS: dict[tuple[type, str], bool] = {}  # (class, name) -> defined by the class or a base


def _is_model(cls: type) -> bool:
    known = _MODELS.get(cls)
    if known is None:
        known = _MODELS[cls] = isinstance(getattr(cls, "__pydantic_fields__", None), dict)
    return known


def _on_class(cls: type, name: str) -> bool:
    """A property or other attribute of the class or a base (looked up once per class and name)."""
    known = _ON_CLASS.get((cls, name))
    if known is None:
        known = _ON_CLASS[(cls, name)] = any(name in vars(base) for base in cls.__mro__)
    return known


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def tokens_of(usage: Any) -> Tokens:
    """LiteLLM's usage, made disjoint: its ``prompt_tokens`` include cache reads (``cached_tokens``) and
    Anthropic's cache writes (``cache_creation_input_tokens``); its ``completion_tokens`` include reasoning."""
    prompt = _count(read(usage, "prompt_tokens"))
    completion = _count(read(usage, "completion_tokens"))
    cache_read = _count(read(read(usage, "prompt_tokens_details"), "cached_tokens")) or _count(
        read(usage, "cache_read_input_tokens")
    )
    cache_write = _count(read(usage, "cache_creation_input_tokens"))
    reasoning = _count(read(read(usage, "completion_tokens_details"), "reasoning_tokens"))
    return Tokens(
        input=max(0, prompt - cache_read - cache_write),
        output=max(0, completion - reasoning),
        cache_read=min(cache_read, prompt),
        cache_write=min(cache_write, max(0, prompt - cache_read)),
        reasoning=min(reasoning, completion),
    )


def occurred_at(end_time: datetime) -> datetime:
    """LiteLLM passes the end time naive, in the proxy host's local time: read it as local time, in UTC."""
    return end_time.astimezone(UTC)


def service_tier(value: Any) -> str | None:
    """The tier the provider billed, lower-case; None for the standard tier."""
    tier = str(value or "").strip().lower()
    return None if tier in _STANDARD_TIERS else tier


def usage_event(
    who: Identity,
    *,
    event_id: str,
    request_id: str,
    provider: str,
    model: str,
    end_time: datetime,
    latency_ms: int,
    usage: Any,
    cost: float | None,
    cache_hit: bool,
    tier: Any = None,
) -> UsageEvent:
    """The UsageEvent of one successful call. A response LiteLLM served from its own cache cost nothing: its
    tokens are kept in metadata, and billed as zero."""
    counts = Tokens(0, 0, 0, 0, 0) if cache_hit else tokens_of(usage)
    metadata = {"litellm_cache_hit": "true"} if cache_hit else {}
    metadata.update(who.tags)
    return UsageEvent(
        event_id=event_id,
        occurred_at=occurred_at(end_time),
        org_id=who.org_id,
        department_id=who.department_id,
        user_id=who.user_id,
        feature=who.feature,
        provider=provider,
        model=model,
        request_id=request_id,
        input_tokens=counts.input,
        output_tokens=counts.output,
        cache_read_tokens=counts.cache_read,
        cache_write_tokens=counts.cache_write,
        reasoning_tokens=counts.reasoning,
        # LiteLLM reports its cost as a float: read its shortest repr once, at the boundary.
        cost_nanos=0 if cache_hit else (None if cost is None else round_nanos(Decimal(repr(float(cost))))),
        latency_ms=max(0, latency_ms),
        metadata=metadata,
        api_key_id=who.api_key_id,
        service_tier=None if cache_hit else service_tier(tier),
    )
