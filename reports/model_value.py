"""Model value for a month (pure): per feature and model, the cost per request and per 1k tokens, the
error rate and latency; and, per feature, what moving its traffic to a cheaper model of comparable
error rate and latency would have saved, priced from the catalogue and labelled as an estimate.

Comparable: an error rate at most one percentage point above, and a p95 latency at most 20 % above,
measured over the org's whole month for that model. A move is proposed only on evidence: both models
must have reported latencies that month; a model without them is listed as such, and no saving is claimed
for it. Each proposal names the figures it rests on. The estimate prices
the feature's tokens at the other model's standard list prices (no long-context or service tiers, no
org discount) and compares it with the same pricing of the model it used, so both sides are priced
alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from reports.model import Column, Figure, Kind, Report, Section, Table
from schemas.money import round_nanos
from schemas.pricing import TokenPrices

__all__ = ["ModelStats", "ModelValueData", "model_value_report", "priced"]

ERROR_SLACK = 0.01
LATENCY_SLACK = 1.2


@dataclass(frozen=True, slots=True)
class ModelStats:
    feature: str
    provider: str
    model: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_nanos: int
    p50_ms: float | None  # None: no event reported a latency
    p95_ms: float | None
    latency_reported: int = 0  # events that reported a latency

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.reasoning_tokens
        )

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(slots=True)
class ModelValueData:
    org_id: str
    month: date
    last: date
    timezone: str
    generated_at: datetime
    stats: list[ModelStats] = field(default_factory=list)
    prices: dict[tuple[str, str], TokenPrices] = field(default_factory=dict)  # (provider, model) -> list prices


def priced(stats: ModelStats, prices: TokenPrices) -> int:
    """The stats' tokens at ``prices``, rounded once to the nano-USD."""
    cache_read = prices.input if prices.cache_read is None else prices.cache_read
    cache_write = prices.input if prices.cache_write is None else prices.cache_write
    reasoning = prices.output if prices.reasoning is None else prices.reasoning
    usd: Decimal = (
        stats.input_tokens * prices.input
        + stats.output_tokens * prices.output
        + stats.cache_read_tokens * cache_read
        + stats.cache_write_tokens * cache_write
        + stats.reasoning_tokens * reasoning
    )
    return int(round_nanos(usd))


@dataclass(frozen=True, slots=True)
class _Evidence:
    requests: int
    errors: int
    p95_ms: float | None  # request-weighted over the features that reported latencies
    latency_reported: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def says(self) -> str:
        return (
            f"errors {self.error_rate:.1%} of {self.requests:,}, p95 {self.p95_ms:,.0f} ms of {self.latency_reported:,}"
        )


def _overall(stats: list[ModelStats]) -> dict[tuple[str, str], _Evidence]:
    """Each model's error rate and (request-weighted) p95 over the org's month."""
    sums: dict[tuple[str, str], list[float]] = {}
    for s in stats:
        acc = sums.setdefault((s.provider, s.model), [0, 0, 0.0, 0, 0])
        acc[0] += s.requests
        acc[1] += s.errors
        if s.p95_ms is not None:
            acc[2] += s.p95_ms * s.requests
            acc[3] += s.requests
            acc[4] += s.latency_reported
    return {k: _Evidence(int(v[0]), int(v[1]), v[2] / v[3] if v[3] else None, int(v[4])) for k, v in sums.items()}


def _cheaper(
    s: ModelStats, data: ModelValueData, overall: dict[tuple[str, str], _Evidence]
) -> tuple[str, int, int, str] | None:
    """The cheapest comparable model for ``s``: (its name, the estimate, the same pricing of ``s``'s own, the
    evidence). None without prices, or without latencies for ``s``'s model: then nothing is comparable."""
    own = data.prices.get((s.provider, s.model))
    mine = overall[(s.provider, s.model)]
    if own is None or mine.p95_ms is None:
        return None
    baseline = priced(s, own)
    best: tuple[str, int, int, str] | None = None
    for key, other in overall.items():
        prices = data.prices.get(key)
        if key == (s.provider, s.model) or prices is None or other.p95_ms is None:
            continue
        if other.error_rate > mine.error_rate + ERROR_SLACK or other.p95_ms > mine.p95_ms * LATENCY_SLACK:
            continue
        estimate = priced(s, prices)
        if estimate < baseline and (best is None or estimate < best[1]):
            best = (f"{key[0]}/{key[1]}", estimate, baseline, f"{s.model}: {mine.says()}; {key[1]}: {other.says()}")
    return best


def model_value_report(data: ModelValueData) -> Report:
    overall = _overall(data.stats)
    rows = [
        (
            s.feature or "(none)",
            s.model,
            s.requests,
            s.cost_nanos,
            s.cost_nanos // s.requests if s.requests else None,
            s.cost_nanos * 1000 // s.tokens if s.tokens else None,
            s.error_rate,
            s.p50_ms,
            s.p95_ms,
        )
        for s in data.stats
    ]
    columns = (
        Column("feature", "Feature"),
        Column("model", "Model"),
        Column("requests", "Requests", Kind.INT, total=True),
        Column("cost", "Cost", Kind.USD, total=True),
        Column("per_request", "Per request", Kind.UNIT_USD),
        Column("per_1k_tokens", "Per 1k tokens", Kind.UNIT_USD),
        Column("error_rate", "Errors", Kind.PCT),
        Column("p50_ms", "p50 ms", Kind.INT, missing="not reported"),
        Column("p95_ms", "p95 ms", Kind.INT, missing="not reported"),
    )
    moves = []
    for s in sorted(data.stats, key=lambda s: -s.cost_nanos):
        found = _cheaper(s, data, overall)
        if found is not None:
            target, estimate, baseline, evidence = found
            moves.append((s.feature or "(none)", s.model, target, baseline, estimate, baseline - estimate, evidence))
    move_columns = (
        Column("feature", "Feature"),
        Column("model", "From"),
        Column("to", "To (comparable, cheaper)"),
        Column("list_cost", "At list prices", Kind.USD, total=True),
        Column("estimate", "Estimated on the other", Kind.USD, total=True),
        Column("saving", "Estimated saving", Kind.USD, total=True),
        Column("evidence", "On the evidence of (the month, both models)"),
    )
    saving = sum(m[5] for m in moves)
    unmeasured = sorted({s.model for s in data.stats if overall[(s.provider, s.model)].p95_ms is None})
    without = (
        f" No move is proposed from or to {', '.join(unmeasured)}: no latency was reported for them this month."
        if unmeasured
        else ""
    )
    return Report(
        "model-value",
        "Model value",
        data.org_id,
        data.month,
        data.last,
        data.timezone,
        data.generated_at,
        (
            Figure("Cost of the month", sum(s.cost_nanos for s in data.stats)),
            Figure(
                "Estimated saving",
                saving,
                Kind.USD,
                "an estimate, at list prices" + ("; none proposed without latencies" if unmeasured else ""),
            ),
        ),
        (
            Section(
                "Cost, errors and latency by feature and model",
                tables=(Table("models", "By feature and model", columns, rows),),
            ),
            Section(
                "Cheaper models of comparable quality (estimate)",
                text=(
                    "For each feature and model, the cheapest model with an error rate at most one point higher and a "
                    "p95 latency at most 20 % higher over the month, with the feature's tokens priced at both models' "
                    "standard list prices. An estimate: tiers, discounts and answer quality are not modelled." + without
                ),
                tables=(Table("savings", "Estimated savings", move_columns, moves),),
            ),
        ),
    )
