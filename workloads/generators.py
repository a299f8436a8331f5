"""Usage workloads for replay: the sample LLM trace, or a synthetic organisation. Pure generators.

Both map each request to a full UsageEvent with org, department, user, model
and feature chosen deterministically from a seeded generator, so a replay is
repeatable to the byte.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.events import UsageEvent

__all__ = ["DEFAULT_TRACE", "Org", "synthetic", "trace_events", "trace_rows"]

DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "examples" / "trace" / "azure_llm_trace_2023_code.csv"
"""The sample trace shipped with the repository (CC BY 4.0; examples/trace/README.md)."""

MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-sonnet-20240620"),
    ("openai", "o3-mini"),
]
FEATURES = ["chat", "code-review", "autocomplete", "search", "summarise"]


@dataclass(frozen=True, slots=True)
class Org:
    org_id: str
    departments: tuple[str, ...]
    users_per_department: int


DEFAULT_ORGS = (
    Org("acme", ("eng", "sales", "support", "research"), 25),
    Org("globex", ("eng", "ops"), 10),
    Org("initech", ("eng",), 5),
)


def trace_rows(text: str) -> Iterator[tuple[datetime, int, int]]:
    """(time, prompt tokens, generated tokens) of the Azure LLM trace CSV."""
    lines = iter(text.splitlines())
    next(lines)  # header
    for line in lines:
        stamp, context, generated = line.split(",")
        yield datetime.fromisoformat(stamp[:26]).replace(tzinfo=UTC), int(context), int(generated)


PROJECTS = ("apollo", "gemini", "mercury")
CUSTOMERS = 12


def _allocation(rng: random.Random, department: str) -> tuple[dict[str, str], str]:
    """The project and end customer in the event's metadata (some events name neither, as in real traffic),
    and the proxy key that made the request (two per department)."""
    metadata = {}
    if rng.random() < 0.9:
        metadata["project"] = rng.choice(PROJECTS)
    if rng.random() < 0.6:
        metadata["customer"] = f"cust-{rng.randrange(CUSTOMERS):03d}"
    return metadata, f"{department}-key-{rng.randrange(2)}"


def _pick(rng: random.Random, orgs: tuple[Org, ...]) -> tuple[str, str, str]:
    org = rng.choices(orgs, weights=[len(o.departments) * o.users_per_department for o in orgs])[0]
    department = rng.choice(org.departments)
    user = f"{department}-user{rng.randrange(org.users_per_department):03d}"
    return org.org_id, department, user


def trace_events(
    text: str,
    count: int,
    seed: int = 7,
    start: datetime | None = None,
    speedup: float = 1.0,
    orgs: tuple[Org, ...] = DEFAULT_ORGS,
    prefix: str = "trace",
) -> Iterator[UsageEvent]:
    """``count`` events from the trace, cycling through it; times keep the trace's gaps (divided by ``speedup``)
    from ``start`` on."""
    rows = list(trace_rows(text))
    rng = random.Random(seed)  # noqa: S311 - a repeatable workload, not a secret
    tags = random.Random(-seed)  # noqa: S311 - its own stream: adding tags left the rest of each event as it was
    first = rows[0][0]
    span = rows[-1][0] - first + timedelta(seconds=1)
    origin = start or first
    for i in range(count):
        at, prompt, generated = rows[i % len(rows)]
        lap = i // len(rows)
        offset = (at - first + span * lap) / speedup
        org_id, department, user = _pick(rng, orgs)
        provider, model = rng.choice(MODELS)
        cached = prompt // 4 if rng.random() < 0.3 else 0
        metadata, key = _allocation(tags, department)
        yield UsageEvent(
            event_id=f"{prefix}-{seed}-{i:09d}",
            occurred_at=origin + offset,
            org_id=org_id,
            department_id=department,
            user_id=user,
            feature=rng.choice(FEATURES),
            provider=provider,
            model=model,
            request_id=f"{prefix}-req-{seed}-{i:09d}",
            input_tokens=prompt - cached,
            cache_read_tokens=cached,
            output_tokens=generated,
            latency_ms=rng.randrange(150, 6000),
            metadata=metadata,
            api_key_id=key,
        )


def synthetic(
    days: int,
    per_day: int,
    start: datetime,
    seed: int = 11,
    orgs: tuple[Org, ...] = DEFAULT_ORGS,
    spike_days: tuple[int, ...] = (),
    prefix: str = "syn",
) -> Iterator[UsageEvent]:
    """A synthetic organisation: a daily curve peaking mid-afternoon, quiet weekends, optional spike days."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable workload, not a secret
    tags = random.Random(-seed)  # noqa: S311 - its own stream, as in trace_events
    n = 0
    for day in range(days):
        date = start + timedelta(days=day)
        weekend = date.weekday() >= 5
        volume = int(per_day * (0.25 if weekend else 1.0) * (4.0 if day in spike_days else 1.0))
        for _ in range(volume):
            hour = min(23, max(0, int(rng.gauss(14, 3.5))))
            at = date.replace(
                hour=hour, minute=rng.randrange(60), second=rng.randrange(60), microsecond=rng.randrange(1_000_000)
            )
            org_id, department, user = _pick(rng, orgs)
            provider, model = rng.choice(MODELS)
            prompt = int(math.exp(rng.gauss(7, 1)))
            metadata, key = _allocation(tags, department)
            yield UsageEvent(
                event_id=f"{prefix}-{seed}-{n:09d}",
                occurred_at=at,
                org_id=org_id,
                department_id=department,
                user_id=user,
                feature=rng.choice(FEATURES),
                provider=provider,
                model=model,
                input_tokens=min(prompt, 200_000),
                output_tokens=int(math.exp(rng.gauss(5, 1))),
                metadata=metadata,
                api_key_id=key,
            )
            n += 1
