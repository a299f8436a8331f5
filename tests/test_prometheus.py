"""Prometheus: rules tested with promtool, the scrape config agreeing with compose and the processes, and
every long-running process's /metrics passing `promtool check metrics`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "dashboards" / "prometheus"


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: scripts/setup installs Debian's prometheus package"
    return found


def test_alert_rules_pass_their_unit_tests() -> None:
    checked = subprocess.run(
        [promtool(), "check", "rules", "rules.yml"], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool(), "test", "rules", "rules_test.yml"], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_rule_has_a_test() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "rules_test.yml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    assert names == tested


def test_compose_scrape_config_and_metric_ports_agree() -> None:
    checked = subprocess.run(
        [promtool(), "check", "config", "--syntax-only", "prometheus.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    settings = Settings()

    worker_env = services["worker"]["environment"]
    metrics_port = int(worker_env["SPENDSTREAM_METRICS_PORT"])
    assert metrics_port == settings.metrics_port
    (worker_sd,) = jobs["worker"]["dns_sd_configs"]
    assert worker_sd["names"] == ["worker"] and worker_sd["port"] == metrics_port
    assert str(metrics_port) in [str(p) for p in services["worker"]["expose"]]
    assert "ports" not in services["worker"], "a published worker port would stop `--scale worker=N`"

    decision_port = int(services["decision"]["environment"]["SPENDSTREAM_DECISION__PORT"])
    assert decision_port == settings.decision.port
    assert jobs["decision"]["static_configs"][0]["targets"] == [f"decision:{decision_port}"]
    assert f"{decision_port}:{decision_port}" in services["decision"]["ports"]
    assert services["decision"]["environment"]["SPENDSTREAM_DECISION__HOST"] == "0.0.0.0"

    console_port = int(services["console"]["environment"]["SPENDSTREAM_CONSOLE__PORT"])
    assert console_port == settings.console.port
    console_metrics = int(services["console"]["environment"]["SPENDSTREAM_CONSOLE__METRICS_PORT"])
    assert console_metrics == settings.console.metrics_port != console_port  # /metrics never on the web port
    assert jobs["console"]["static_configs"][0]["targets"] == [f"console:{console_metrics}"]
    assert f"{console_port}:{console_port}" in services["console"]["ports"]
    assert all(str(console_metrics) not in str(p) for p in services["console"]["ports"])  # not published

    reports_port = int(services["reports"]["environment"]["SPENDSTREAM_REPORTS__METRICS_PORT"])
    assert reports_port == settings.reports.metrics_port
    (reports_sd,) = jobs["reports"]["dns_sd_configs"]
    assert reports_sd["names"] == ["reports"] and reports_sd["port"] == reports_port

    for name in ("worker", "decision", "console", "reports", "grafana", "prometheus"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert scrape["rule_files"] == ["rules.yml"]
    assert "./dashboards/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    grafana_mounts = services["grafana"]["volumes"]
    provider = yaml.safe_load((ROOT / "dashboards/grafana/provisioning/dashboards/spendstream.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"./dashboards/grafana/dashboards:{path}:ro" in grafana_mounts
