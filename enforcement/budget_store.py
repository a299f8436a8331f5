"""Writing budgets and org settings into Redis, where the cap scripts read them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from enforcement.keys import KeyLayout
from schemas.budgets import Budget, OrgConfig

__all__ = ["apply_budgets", "encode_budget"]


def encode_budget(budget: Budget) -> tuple[str, str]:
    """(hash field, value) as the Lua scripts read them: ``"<limit>|<mode>|<stage>:<threshold>,..."``."""
    stages = ",".join(f"{stage}:{threshold}" for stage, threshold in budget.thresholds())
    return f"{budget.scope.value}/{budget.scope_id}/{budget.period.value}", (
        f"{budget.limit_nanos}|{budget.mode.value}|{stages}"
    )


def apply_budgets(
    redis: Any, layout: KeyLayout, orgs: Iterable[OrgConfig], budgets: Iterable[Budget], epoch: str | None = "applied"
) -> int:
    """Make Redis hold exactly these budgets for every org named (others untouched), and mark each org's
    state loaded (``epoch``: what config it reflects; None leaves the mark to the caller, who writes it once
    the counters are in place too). Returns how many budgets."""
    by_org: dict[str, dict[str, str]] = {}
    org_configs = {org.org_id: org for org in orgs}
    for budget in budgets:
        field, value = encode_budget(budget)
        by_org.setdefault(budget.org_id, {})[field] = value
        org_configs.setdefault(budget.org_id, OrgConfig(budget.org_id))
    for org_id, config in org_configs.items():
        pipe = redis.pipeline(transaction=True)  # one org's keys share a slot: one transaction each (Cluster)
        pipe.delete(layout.budgets(org_id))
        if by_org.get(org_id):
            pipe.hset(layout.budgets(org_id), mapping=by_org[org_id])
        pipe.hset(layout.org_settings(org_id), mapping=config.settings() | ({"loaded": epoch} if epoch else {}))
        pipe.execute()
    return sum(len(v) for v in by_org.values())
