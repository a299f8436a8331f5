"""A real LiteLLM proxy (mock responses, its bundled price map and tokenizer, no network) with our hook.

Keys are authenticated by a custom auth module, as a key database would: each carries its org, team
(department) and user. An allowed request to an aliased model ends up as a UsageEvent on Kafka that
settles its reservation, counted against the deployment's model and provider and the key itself; a
request naming another org is refused; over-cap requests are denied with our reason and the blocking
scope, the model cap included."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from enforcement.budget_store import apply_budgets
from schemas import Budget, BudgetMode, Period, ScopeKind
from schemas.budgets import OrgConfig
from tests.deployment import ROOT, Deployment, free_port

pytestmark = pytest.mark.stack

ADA_KEY, BOB_KEY = "sk-acme-ada-0001", "sk-acme-bob-0002"
CAROL_KEY, DAVE_KEY = "sk-initech-carol-0003", "sk-umbrella-dave-0004"  # orgs no one configured


def custom_auth(keys: dict[str, dict[str, object]]) -> str:
    """A LiteLLM custom auth module giving each key its fields (user, team, org, metadata), as a key database."""
    return f"""
from fastapi import Request
from litellm.proxy._types import UserAPIKeyAuth

KEYS = {keys!r}


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    who = KEYS.get(api_key.removeprefix("Bearer ").strip())
    if who is None:
        raise Exception("unknown key")
    return UserAPIKeyAuth(api_key=api_key.removeprefix("Bearer ").strip(), **who)
"""


CUSTOM_AUTH = custom_auth(
    {
        ADA_KEY: {"user_id": "ada", "team_id": "eng", "org_id": "acme"},
        BOB_KEY: {"user_id": "bob", "team_id": "eng", "org_id": "acme"},
        CAROL_KEY: {"user_id": "carol", "team_id": "ops", "org_id": "initech"},
        DAVE_KEY: {"user_id": "dave", "team_id": "ops", "org_id": "umbrella"},
    }
)
CONFIG = """
model_list:
  - model_name: team-default
    litellm_params:
      model: openai/gpt-4o
      api_key: sk-not-used
      mock_response: "Hello from the mock."
litellm_settings:
  callbacks: integrations.litellm_hook.handler
general_settings:
  master_key: sk-test-master-key-for-the-e2e-test
  custom_auth: custom_auth.user_api_key_auth
"""
# LiteLLM's bundled prices for gpt-4o: 2.5 USD per million input tokens, 10 per million output.
# The mock answers 10 prompt and 20 completion tokens: 10 x 2,500 + 20 x 10,000 nano-USD.
COST = 225_000


def ask(port: int, key: str, metadata: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "team-default",
            "messages": [{"role": "user", "content": "hi there"}],
            "user": "whoever-the-caller-says",
            "max_tokens": 20,
            "metadata": metadata or {},
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
        [
            Budget("acme", ScopeKind.USER, "ada", Period.MONTHLY, 300_000, BudgetMode.HARD),
            Budget("acme", ScopeKind.MODEL, "gpt-4o", Period.MONTHLY, 3 * COST + COST // 2, BudgetMode.HARD),
        ],
    )
    worker = dep.start_worker()
    (tmp_path / "custom_auth.py").write_text(CUSTOM_AUTH)
    proxy, port = start_proxy(dep, litellm_bin, tmp_path, {})
    try:
        allowed = ask(port, ADA_KEY)
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["choices"][0]["message"]["content"] == "Hello from the mock."

        # The event reaches the worker through Kafka and settles the reservation, as the key's identity, on
        # the deployment's model and provider (the alias resolved), and on the key itself.
        client = dep.redis()
        resv_key, _ = dep.layout.reservations("acme")
        ada_key_id = "apikey/" + hashlib.sha256(ADA_KEY.encode()).hexdigest()

        def settled() -> bool:
            spent = dep.redis_spend("acme", datetime.now(UTC))["monthly"]
            return spent.get("user/ada") == COST and client.hlen(resv_key) == 0

        dep.wait_for(settled, 60, "the reservation settled by the usage event")
        monthly = dep.redis_spend("acme", datetime.now(UTC))["monthly"]
        assert {k: monthly.get(k) for k in ("department/eng", "model/gpt-4o", "provider/openai", ada_key_id)} == {
            "department/eng": COST,
            "model/gpt-4o": COST,
            "provider/openai": COST,
            ada_key_id: COST,
        }
        assert "user/whoever-the-caller-says" not in monthly
        db = dep.settings.clickhouse.database
        dep.wait_for(lambda: dep.ch_rows() == 1, 30, "the event in ClickHouse")
        row = dep.ch().query(f"SELECT request_id, cost_nanos, api_key_id, model, provider FROM {db}.usage_events")
        request_id, cost, api_key_id, model, provider = row.result_rows[0]
        assert request_id.startswith("llm-") and cost == COST and (model, provider) == ("gpt-4o", "openai")
        assert "apikey/" + api_key_id == ada_key_id

        # A request that names another org is refused, whatever its key may do.
        other_org = ask(port, ADA_KEY, {"spendstream_org_id": "globex"})
        assert other_org.status_code == 403, other_org.text
        assert "its key spends as 'acme'" in other_org.text

        denied = ask(port, ADA_KEY)  # 225,000 spent + 225,000 estimated > 300,000
        assert denied.status_code == 429, denied.text
        body = denied.text
        assert "spendstream" in body and "user/ada monthly hard cap" in body and "user/ada/monthly" in body
        # bob has no user cap, but the model cap on gpt-4o (asked for by its alias) holds
        assert ask(port, BOB_KEY).status_code == 200
        assert ask(port, BOB_KEY).status_code == 200
        dep.wait_for(lambda: dep.ch_rows() == 3, 30, "bob's events in ClickHouse")
        capped = ask(port, BOB_KEY)
        assert capped.status_code == 429, capped.text
        assert "model/gpt-4o/monthly" in capped.text

        # An org no one configured (Redis's state is whole): admitted and counted, not denied by a lost state.
        unconfigured = ask(port, CAROL_KEY)
        assert unconfigured.status_code == 200, unconfigured.text
        dep.wait_for(
            lambda: dep.redis_spend("initech", datetime.now(UTC))["monthly"].get("user/carol") == COST, 60, "counted"
        )
        dep.wait_for(lambda: dep.ch_rows() == 4, 30, "carol's event in ClickHouse")
        assert (dep.metric("spendstream_events_unconfigured_org_total") or 0) >= 1
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- the proxy's log:\n{(tmp_path / 'proxy.log').read_text()[-3000:]}") from exc
    finally:
        stop(proxy)

    # The operator refuses unknown orgs: an org no one configured is denied, saying so.
    proxy, port = start_proxy(dep, litellm_bin, tmp_path, {"SPENDSTREAM_DECISION__UNKNOWN_ORGS": "deny"})
    try:
        for key in (CAROL_KEY, DAVE_KEY):  # one whose spend was counted before, and one never seen
            refused = ask(port, key)
            assert refused.status_code == 429, refused.text
            assert "is not configured, and this deployment refuses unknown orgs" in refused.text
        # A configured org whose Redis state was wiped (no worker to restore it yet) answers by its policy.
        dep.kill_worker(worker)
        for key in client.scan_iter(f"{dep.settings.redis.key_prefix}:*", count=10_000):
            client.delete(key)
        lost = ask(port, BOB_KEY)
        assert lost.status_code == 429, lost.text
        assert "not loaded" in lost.text and "fail-closed" in lost.text
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- the proxy's log:\n{(tmp_path / 'proxy.log').read_text()[-3000:]}") from exc
    finally:
        stop(proxy)


def start_proxy(
    dep: Deployment, litellm_bin: Path, tmp_path: Path, extra: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    """The LiteLLM proxy with the hook, on a free port, once it answers."""
    config = tmp_path / "litellm.yaml"
    config.write_text(CONFIG)
    port = free_port()
    env = {**dep.env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": f"{ROOT}:{tmp_path}", **extra}
    env.pop("VIRTUAL_ENV", None)
    log = (tmp_path / "proxy.log").open("ab")
    proxy = subprocess.Popen(
        [str(litellm_bin), "--config", str(config), "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )

    def healthy() -> bool:
        assert proxy.poll() is None, f"the proxy exited during start-up: {(tmp_path / 'proxy.log').read_text()[-3000:]}"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        dep.wait_for(healthy, 120, "the LiteLLM proxy")
    except AssertionError:
        stop(proxy)
        raise
    return proxy, port


def stop(proxy: subprocess.Popen[bytes]) -> None:
    proxy.terminate()
    try:
        proxy.wait(20)
    except subprocess.TimeoutExpired:
        proxy.kill()
