"""`spendstream decision serve` on the local stack, with a worker: the one path for a proxy's costs.

A cost posted to /v1/usage is published to the usage topic and counted by the worker, so it reaches
Redis, ClickHouse (and so reports and rebuilds) and the stage alerts, once, by its event_id. A direct
settle wrote Redis only: ClickHouse never saw it and its 50 % and 80 % alerts were lost. The service
also estimates from tokens with the prices on config.v1 (it never passed an estimator: every such
request got 400)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from enforcement.access import hash_key
from enforcement.budget_store import apply_budgets
from schemas import Budget, BudgetMode, Period, ScopeKind
from schemas.budgets import OrgConfig
from tests.deployment import Deployment, free_port, records_of

pytestmark = pytest.mark.stack

KEY = "ssk_test-decision-key"
SUBJECT = {"org_id": "acme", "department_id": "eng", "user_id": "ada", "feature": "chat"}


def test_usage_posted_to_the_service_is_counted_everywhere_once(deployment: Deployment, tmp_path: Path) -> None:
    dep = deployment
    keys = tmp_path / "keys.yaml"
    entry = {"name": "test", "sha256": hash_key(KEY), "orgs": ["acme"]}
    keys.write_text(json.dumps({"keys": [entry]}))
    apply_budgets(
        dep.redis(),
        dep.layout,
        [OrgConfig("acme")],
        [Budget("acme", ScopeKind.USER, "ada", Period.MONTHLY, 10_000_000, BudgetMode.SOFT, (50, 80))],
    )
    dep.start_worker()
    port = free_port()
    env = {**dep.env, "SPENDSTREAM_DECISION__KEYS_FILE": str(keys), "SPENDSTREAM_DECISION__PORT": str(port)}
    service = subprocess.Popen(
        [sys.executable, "-m", "admin.cli", "decision", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "decision.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {KEY}"}
    try:

        def up() -> bool:
            assert service.poll() is None, (tmp_path / "decision.log").read_text()
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        dep.wait_for(up, 60, "the decision service")

        def estimated() -> int | None:
            body = {**SUBJECT, "model": "gpt-4o", "provider": "openai", "request_id": "r1"}
            answer = httpx.post(
                f"{base}/v1/reserve", headers=auth, json={**body, "prompt_tokens": 1000, "max_tokens": 100}
            )
            return answer.json().get("estimate_nanos") if answer.status_code == 200 else None

        # examples/prices.yaml: gpt-4o at 2.50 and 10.00 USD per million tokens
        dep.wait_for(lambda: estimated() == 1000 * 2_500 + 100 * 10_000, 30, "an estimate from config.v1's prices")
        tokens = {"input_tokens": 2000, "output_tokens": 300}  # 5,000,000 + 3,000,000 nano-USD: 80 % of the budget
        event = {**SUBJECT, "provider": "openai", "model": "gpt-4o", "request_id": "r1", **tokens}
        event |= {"event_id": "via-service-1", "occurred_at": datetime.now(UTC).isoformat()}
        for _ in range(2):  # a retried post is one event
            answer = httpx.post(f"{base}/v1/usage", headers=auth, json=event)
            assert answer.status_code == 202, answer.text

        def counted() -> bool:
            spent = dep.redis_spend("acme", datetime.now(UTC))["monthly"].get("user/ada")
            return spent == 8_000_000 and dep.ch_rows() == 1

        dep.wait_for(counted, 60, "the event in Redis and ClickHouse")
        reserved = httpx.get(f"{base}/v1/spend/user/ada", headers=auth, params={"org_id": "acme"}).json()
        assert reserved["nanos"]["reserved"] == 0  # the reservation was settled by the event
        dep.wait_for(lambda: dep.metric("spendstream_events_duplicate_total") == 1, 30, "the retry as a duplicate")
        stages = sorted(
            json.loads(value or b"{}").get("stage")
            for value, _ in records_of(dep, dep.topics.alerts)
            if json.loads(value or b"{}").get("kind") == "budget_stage"
        )
        assert stages == [50, 80]  # both crossings published, once each
    finally:
        service.terminate()
        service.wait(20)
