"""Event decoding: msgspec (chosen) against pydantic v2, with stdlib json.loads as the baseline.

Decodes the same 20,000 UsageEvent documents (built from the shared trace's token counts) into a
validated object with each library. Writes bench/results/decode.json.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import write_result
from schemas.events import END_OF_TEXT, ID_PATTERN, NAME_PATTERN, UsageEvent, decode_event
from workloads.generators import DEFAULT_TRACE

TRACE = DEFAULT_TRACE
N = 20_000
ROUNDS = 5

# pydantic's Rust regex has no lookahead, and its $ already means the end of the text
Id = Annotated[str, Field(pattern=ID_PATTERN.replace(END_OF_TEXT, "$"))]
Name = Annotated[str, Field(pattern=NAME_PATTERN.replace(END_OF_TEXT, "$"))]
Tokens = Annotated[int, Field(ge=0, le=100_000_000, strict=True)]


class PydanticUsageEvent(BaseModel):
    """The same contract as schemas.events.UsageEvent, in pydantic v2."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_id: Id
    occurred_at: AwareDatetime
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
    cost_nanos: Annotated[int, Field(ge=0, le=10**15, strict=True)] | None = None
    status: Literal["success", "error", "cancelled"] = "success"
    latency_ms: Annotated[int, Field(ge=0, le=86_400_000, strict=True)] | None = None
    metadata: Annotated[dict[str, Annotated[str, Field(max_length=256)]], Field(max_length=16)] = {}


def documents() -> list[bytes]:
    rng = random.Random(7)
    rows = []
    with TRACE.open() as handle:
        next(handle)
        for line in handle:
            stamp, context, generated = line.strip().split(",")
            rows.append((stamp, int(context), int(generated)))
    docs = []
    for i in range(N):
        stamp, context, generated = rows[i % len(rows)]
        at = datetime.fromisoformat(stamp[:26]).isoformat() + "Z"
        docs.append(
            json.dumps(
                {
                    "event_id": f"evt-{i:08d}",
                    "occurred_at": at,
                    "org_id": f"org-{rng.randrange(5)}",
                    "department_id": f"dept-{rng.randrange(20)}",
                    "user_id": f"user-{rng.randrange(500)}",
                    "feature": rng.choice(["chat", "code-review", "autocomplete", "search"]),
                    "provider": "openai",
                    "model": rng.choice(["gpt-4o", "gpt-4o-mini", "o3-mini"]),
                    "request_id": f"req-{i:08d}",
                    "input_tokens": context,
                    "output_tokens": generated,
                    "cache_read_tokens": context // 3,
                    "latency_ms": rng.randrange(100, 4000),
                    "metadata": {"trace": "azure-2023-code"},
                }
            ).encode()
        )
    return docs


def best_of(fn, docs: list[bytes]) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(ROUNDS):
        began = time.perf_counter()
        fn(docs)
        best = min(best, time.perf_counter() - began)
    return best / len(docs) * 1e6


def main() -> None:
    docs = documents()
    assert all(isinstance(decode_event(d), UsageEvent) for d in docs)
    assert all(PydanticUsageEvent.model_validate_json(d) for d in docs[:100])
    baseline = best_of(lambda ds: [json.loads(d) for d in ds], docs)
    chosen = best_of(lambda ds: [decode_event(d) for d in ds], docs)
    pydantic = best_of(lambda ds: [PydanticUsageEvent.model_validate_json(d) for d in ds], docs)
    write_result(
        "decode",
        {
            "events": N,
            "chosen": "msgspec",
            "msgspec_us_per_event": round(chosen, 3),
            "pydantic_us_per_event": round(pydantic, 3),
            "json_loads_us_per_event": round(baseline, 3),
            "pydantic_over_msgspec": round(pydantic / chosen, 2),
            "msgspec_over_json_loads": round(chosen / baseline, 2),
        },
    )


if __name__ == "__main__":
    main()
