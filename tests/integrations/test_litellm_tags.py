"""Caps on an allocation tag through a real LiteLLM proxy: the project comes from the key's metadata, which
only the proxy's admin sets; a request naming another project in its own metadata does not escape the cap,
unless the org trusts request tags; LiteLLM's end user is the org's customer under that trust."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.deployment import Deployment
from tests.integrations.test_litellm_e2e import CONFIG, COST, custom_auth, start_proxy, stop

pytestmark = pytest.mark.stack

APOLLO_KEY, OPEN_KEY = "sk-acme-apollo-0001", "sk-acme-open-0002"
CUSTOM_AUTH = custom_auth(
    {
        APOLLO_KEY: {"user_id": "ada", "team_id": "eng", "org_id": "acme", "metadata": {"project": "apollo"}},
        OPEN_KEY: {"user_id": "bob", "team_id": "eng", "org_id": "acme"},
    }
)
BUDGETS = """
orgs:
  acme: {tags: [project, customer], trust_request_tags: %s}
budgets:
  - {org: acme, scope: tag, id: project=apollo, period: monthly, limit: "0.0003", mode: hard}
"""
assert "mock_response" in CONFIG  # the proxy answers 10 prompt and 20 completion tokens: COST each


def ask(port: int, key: str, metadata: dict[str, str], user: str = "someone") -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "team-default", "messages": [{"role": "user", "content": "hi"}], "user": user,
              "max_tokens": 20, "metadata": metadata},
        timeout=60,
    )  # fmt: skip


def apply(dep: Deployment, trust: bool) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(BUDGETS % ("true" if trust else "false"))
    result = dep.cli("budgets", "apply", handle.name)
    assert result.returncode == 0, result.stderr


def test_a_hard_cap_on_a_project_holds_for_the_keys_project_whatever_the_request_names(
    deployment: Deployment, litellm_bin: Path, tmp_path: Path
) -> None:
    dep = deployment
    apply(dep, trust=False)
    dep.start_worker()
    dep.wait_for(lambda: dep.redis().exists(dep.layout.budgets("acme")) == 1, 60, "the budgets in Redis")
    (tmp_path / "custom_auth.py").write_text(CUSTOM_AUTH)
    proxy, port = start_proxy(dep, litellm_bin, tmp_path, {"SPENDSTREAM_DECISION__CATALOGUE_REFRESH_S": "1"})
    db = dep.settings.clickhouse.database

    def tags_stored() -> list[tuple[str, str, str]]:
        sql = f"SELECT user_id, tags['project'], tags['customer'] FROM {db}.usage_events ORDER BY occurred_at"
        return [tuple(row) for row in dep.ch().query(sql).result_rows]

    def apollo_spend() -> int | None:
        return dep.redis_spend("acme", datetime.now(UTC))["monthly"].get("tag/project=apollo")

    try:
        assert ask(port, APOLLO_KEY, {}).status_code == 200
        dep.wait_for(lambda: apollo_spend() == COST, 60, "the key's project counted in Redis")
        # 225,000 spent + 225,000 estimated > 300,000: naming another project does not escape the cap
        escape = ask(port, APOLLO_KEY, {"project": "zeus"})
        assert escape.status_code == 429, escape.text
        assert "tag/project=apollo/monthly" in escape.text
        # a key with no project may not choose one: untagged, and the cap on apollo does not apply to it
        assert ask(port, OPEN_KEY, {"project": "apollo"}, user="cust-42").status_code == 200
        dep.wait_for(lambda: dep.ch_rows() == 2, 30, "both events in ClickHouse")
        assert tags_stored() == [("ada", "apollo", "(untagged)"), ("bob", "(untagged)", "(untagged)")]
        assert apollo_spend() == COST

        # The org opts in: the request's metadata names the project, and its end user is the customer.
        apply(dep, trust=True)

        def capped() -> bool:
            answer = ask(port, OPEN_KEY, {"project": "apollo"}, user="cust-42")
            return answer.status_code == 429 and "tag/project=apollo/monthly" in answer.text

        dep.wait_for(capped, 30, "the request's project capped once the org trusts it")
        assert ask(port, OPEN_KEY, {"project": "gemini"}, user="cust-42").status_code == 200
        dep.wait_for(lambda: ("bob", "gemini", "cust-42") in tags_stored(), 30, "the trusted tags stored")
        assert apollo_spend() == COST  # every event with apollo was the first one
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- the proxy's log:\n{(tmp_path / 'proxy.log').read_text()[-3000:]}") from exc
    finally:
        stop(proxy)
