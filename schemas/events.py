"""UsageEvent v1: one LLM request as a proxy reports it.

Decoding uses msgspec: one C pass validates types, bounds and patterns and
builds the object, faster than stdlib ``json.loads`` alone and faster than
pydantic v2 on the same contract (``bench/decode.py`` measures all three).
msgspec also derives the shipped JSON Schema from this very struct and is one
small wheel, which matters for proxies that embed the cap client. A rejected
event becomes an :class:`EventError` naming the field and the reason, never
an exception that escapes the stream.

Token counts are disjoint, each billed at its own price:

* ``input_tokens``: prompt tokens billed at the input price (cache reads excluded);
* ``cache_read_tokens``: prompt tokens served from the provider's cache;
* ``cache_write_tokens``: prompt tokens written to the provider's cache;
* ``output_tokens``: generated tokens, reasoning excluded;
* ``reasoning_tokens``: hidden reasoning tokens (billed at the output price
  unless the catalogue names a reasoning price).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "END_OF_TEXT",
    "ID_PATTERN",
    "NAME_PATTERN",
    "EventError",
    "UsageEvent",
    "decode_event",
    "decode_events",
    "encode_event",
    "error_of",
    "usage_event_json_schema",
]

END_OF_TEXT = r"(?![\s\S])"
"""The end of the text. ``$`` would also match before a final newline in Python (and so in msgspec
and jsonschema): ``"acme\n"`` would pass as an id and become a scope of its own. This lookahead means
the same in Python and in the ECMA-262 regexes of JSON Schema validators in other languages."""

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,127}" + END_OF_TEXT
"""Ids of orgs, departments, users, features, events and requests.

No ``:`` (the Redis key separator), no ``{`` or ``}`` (Redis Cluster hash tags), no spaces."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+\-]{0,199}" + END_OF_TEXT
"""Provider and model names, which may carry ``/`` and ``:`` ("bedrock/anthropic.claude-v2:1")."""

MAX_TOKENS_PER_EVENT = 100_000_000
MAX_COST_NANOS = 1_000_000 * 1_000_000_000  # one million USD for one request is a bug, not a bill
MAX_LATENCY_MS = 86_400_000
MAX_METADATA_ENTRIES = 16

Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN, description="1-128 of A-Z a-z 0-9 _ . @ + -")]
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, description="1-200 of A-Z a-z 0-9 _ . : / @ + -")]
Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS_PER_EVENT)]
MetaKey = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.\-]{1,64}" + END_OF_TEXT)]
MetaValue = Annotated[str, msgspec.Meta(max_length=256)]
Status = Literal["success", "error", "cancelled"]
ServiceTier = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}" + END_OF_TEXT, description="lower-case")]


class UsageEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One metered LLM request. Unknown fields are refused: a misspelt token
    field would otherwise be billed as zero."""

    event_id: Id
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with an offset")]
    org_id: Id
    user_id: Id
    feature: Id
    provider: Name
    model: Name
    department_id: Id | None = None
    request_id: Id | None = None
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cache_read_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0
    cost_nanos: Annotated[int, msgspec.Meta(ge=0, le=MAX_COST_NANOS)] | None = None
    status: Status = "success"
    latency_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_LATENCY_MS)] | None = None
    metadata: Annotated[dict[MetaKey, MetaValue], msgspec.Meta(max_length=MAX_METADATA_ENTRIES)] = {}
    api_key_id: Id | None = None
    """The proxy key that made the request (its id, never the secret): spend of ``apikey`` budgets."""
    service_tier: ServiceTier | None = None
    """The provider's service tier when not the standard one (``priority``, ``flex``): its prices apply."""

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.reasoning_tokens
        )


class EventError(msgspec.Struct, frozen=True):
    """Why an event was rejected: the field (a JSON path such as ``$.input_tokens``,
    or ``$`` for the whole document) and the reason, both machine-readable."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


_decoder = msgspec.json.Decoder(UsageEvent)
_encoder = msgspec.json.Encoder()
_AT_PATH = re.compile(r" - at `(?P<path>\$[^`]*)`$")
_AT_KEY = re.compile(r" - at `key` in `(?P<path>\$[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`(?: - at `(?P<path>\$[^`]*)`)?$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`(?: - at `(?P<path>\$[^`]*)`)?$")


_PATTERN_WORDS = {
    ID_PATTERN: "1-128 of A-Z a-z 0-9 _ . @ + - (nothing else, not even a trailing newline)",
    NAME_PATTERN: "1-200 of A-Z a-z 0-9 _ . : / @ + - (nothing else, not even a trailing newline)",
}


def _readable(reason: str) -> str:
    """msgspec names a failed pattern by its regex; say what the pattern allows instead."""
    for pattern, words in _PATTERN_WORDS.items():
        if reason == f"Expected `str` matching regex {pattern!r}":
            return f"Expected `str` of {words}"
    return reason


def error_of(exc: msgspec.DecodeError) -> EventError:
    """The field (a JSON path) and the reason of a msgspec decoding error, for any msgspec model."""
    message = str(exc)
    for pattern, reason in ((_MISSING, "required field is missing"), (_UNKNOWN, "unknown field")):
        match = pattern.match(message)
        if match:
            base = match.group("path") or "$"
            return EventError(field=f"{base}.{match.group('name')}", reason=reason)
    match = _AT_KEY.search(message)
    if match:
        return EventError(field=match.group("path"), reason="key: " + message[: match.start()])
    match = _AT_PATH.search(message)
    if match:
        return EventError(field=match.group("path"), reason=_readable(message[: match.start()]))
    if isinstance(exc, msgspec.ValidationError):
        return EventError(field="$", reason=message)
    return EventError(field="$", reason=f"malformed JSON: {message}")


def decode_event(data: bytes | str) -> UsageEvent | EventError:
    """Decode and validate one event; never raises for bad input."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        return error_of(exc)


def decode_events(batch: Iterable[bytes]) -> list[UsageEvent | EventError]:
    """Decode a batch, keeping order: position i answers input i."""
    return [decode_event(raw) for raw in batch]


def encode_event(event: UsageEvent) -> bytes:
    return _encoder.encode(event)


def usage_event_json_schema() -> dict[str, object]:
    """The JSON Schema (2020-12) that producers in other languages validate against.

    ``schemas/jsonschema/usage_event.v1.json`` is this, written out; a test keeps them equal."""
    schema: dict[str, Any] = msgspec.json.schema(UsageEvent)
    # msgspec releases differ in how they indent docstrings: pin the description to one form
    schema["$defs"]["UsageEvent"]["description"] = inspect.cleandoc(UsageEvent.__doc__ or "")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://spendstream.dev/schemas/usage_event.v1.json"
    schema["title"] = "spendstream UsageEvent v1"
    return schema
