"""A real LiteLLM proxy (mock responses, its bundled price map and tokenizer, no network) with our hook:
an allowed request ends up as a UsageEvent on Kafka that settles its reservation; an over-cap request
is denied with our reason and the blocking scope."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from enforcement.budget_store import apply_budgets
from schemas import Budget, BudgetMode, Period, ScopeKind
from schemas.budgets import OrgConfig
from tests.streams.conftest import Deployment, free_port

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-test-master"
CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: sk-not-used
      mock_response: "Hello from the mock."
litellm_settings:
  callbacks: streams.litellm_hook.handler
general_settings:
  master_key: sk-test-master
"""
# LiteLLM's bundled prices for gpt-4o: 2.5 USD per million input tokens, 10 per million output.
# The mock answers 10 prompt and 20 completion tokens: 10 x 2,500 + 20 x 10,000 nano-USD.
COST = 225_000


@pytest.fixture(scope="session")
def litellm_bin() -> Path:
    result = subprocess.run(
        [str(ROOT / "scripts" / "setup-litellm")], capture_output=True, text=True, timeout=1200, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return ROOT / ".venv-litellm" / "bin" / "litellm"


def ask(port: int, user: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/chat/completions",
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi there"}],
            "user": user,
            "max_tokens": 20,
            "metadata": {"spendstream_org_id": "acme", "spendstream_department_id": "eng"},
        },
        timeout=60,
    )


def test_litellm_proxy_reserves_emits_and_is_denied_over_cap(
    deployment: Deployment, litellm_bin: Path, tmp_path: Path
) -> None:
    dep = deployment
    apply_budgets(
        dep.redis(),
        dep.layout,
        [OrgConfig("acme")],
        [Budget("acme", ScopeKind.USER, "ada", Period.MONTHLY, 300_000, BudgetMode.HARD)],
    )
    dep.start_worker()
    config = tmp_path / "litellm.yaml"
    config.write_text(CONFIG)
    port = free_port()
    env = {**dep.env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}
    env.pop("VIRTUAL_ENV", None)
    log = (tmp_path / "proxy.log").open("wb")
    proxy = subprocess.Popen(
        [str(litellm_bin), "--config", str(config), "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        dep.wait_for(healthy, 120, "the LiteLLM proxy")
        allowed = ask(port, "ada")
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["choices"][0]["message"]["content"] == "Hello from the mock."

        # The event reaches the worker through Kafka and settles the reservation.
        client = dep.redis()
        resv_key, _ = dep.layout.reservations("acme")

        def settled() -> bool:
            spent = dep.redis_spend("acme", datetime.now(UTC))
            return spent["monthly"].get("user/ada") == COST and client.hlen(resv_key) == 0

        dep.wait_for(settled, 60, "the reservation settled by the usage event")
        db = dep.settings.clickhouse.database
        dep.wait_for(lambda: dep.ch_rows() == 1, 30, "the event in ClickHouse")
        request_id, cost = dep.ch().query(f"SELECT request_id, cost_nanos FROM {db}.usage_events").result_rows[0]
        assert request_id.startswith("llm-") and cost == COST

        denied = ask(port, "ada")  # 225,000 spent + 225,000 estimated > 300,000
        assert denied.status_code == 429, denied.text
        body = denied.text
        assert "spendstream" in body and "user/ada monthly hard cap" in body and "user/ada/monthly" in body
        assert ask(port, "bob").status_code == 200  # bob has no cap
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- the proxy's log:\n{(tmp_path / 'proxy.log').read_text()[-3000:]}") from exc
    finally:
        proxy.terminate()
        try:
            proxy.wait(20)
        except subprocess.TimeoutExpired:
            proxy.kill()
