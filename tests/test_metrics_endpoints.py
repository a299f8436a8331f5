"""Every long-running process's /metrics passes `promtool check metrics` and serves the names the
Prometheus dashboards and alert rules use."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboards import generate
from enforcement.access import hash_key
from schemas.settings import Settings
from tests.deployment import Deployment, free_port
from tests.test_prometheus import PROMETHEUS, promtool


def _scrape(url: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _check_metrics(text: str) -> None:
    result = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _names(exposition: str) -> set[str]:
    """Metric families a process declares (a labelled family has its TYPE line before any sample)."""
    return set(re.findall(r"^(?:# TYPE )?(spendstream_[a-z_]+)", exposition, re.M))


def _prometheus_names() -> set[str]:
    """The metric names the Prometheus dashboards and the alert rules use."""
    names: set[str] = set()
    texts = [(PROMETHEUS / "rules.yml").read_text()]
    for text in generate.render().values():
        board = json.loads(text)
        texts += [t.get("expr", "") for p in board["panels"] for t in p["targets"]]
    for text in texts:
        names |= set(re.findall(r"\bspendstream_[a-z_]+", text))
    return names


@pytest.mark.stack
def test_every_process_serves_lint_free_metrics_with_the_names_dashboards_and_rules_use(
    deployment: Deployment, stack: Settings, tmp_path: Path
) -> None:
    served: set[str] = set()
    # the stream worker
    deployment.start_worker()
    text = _scrape(f"http://127.0.0.1:{deployment.metrics_port}/metrics")
    _check_metrics(text)
    served |= _names(text)
    # the decision service
    port = free_port()
    keys = tmp_path / "keys.yaml"
    keys.write_text(json.dumps({"keys": [{"name": "k1", "sha256": hash_key("k1"), "orgs": ["*"]}]}))
    env = {**deployment.env, "SPENDSTREAM_DECISION__KEYS_FILE": str(keys), "SPENDSTREAM_DECISION__PORT": str(port)}
    decision = subprocess.Popen(
        [sys.executable, "-m", "admin.cli", "decision", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        text = _scrape(f"http://127.0.0.1:{port}/metrics")
        _check_metrics(text)
        served |= _names(text)
    finally:
        decision.terminate()
        decision.wait(30)
    # the embedded ClickHouse server
    _check_metrics(_scrape(f"http://{stack.clickhouse.host}:{stack.clickhouse.port}/metrics"))

    def family(name: str) -> str:
        return re.sub(r"_(total|bucket|count|sum|created)$", "", name)

    missing = {n for n in _prometheus_names() if family(n) not in {family(s) for s in served}}
    assert not missing, f"dashboards or rules use metrics no process serves: {sorted(missing)}"
