"""Project-wide checks: the import rule, and docker-compose agreeing with the settings."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_import_rule_holds() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is not installed"
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_compose_names_the_services_and_ports_the_settings_expect() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "clickhouse", "grafana", "prometheus"} <= set(services)
    s = Settings()

    def published(name: str) -> set[int]:
        return {int(str(p).split(":")[0]) for p in services[name]["ports"]}

    assert s.stack.kafka_port in published("kafka")
    assert int(s.kafka.bootstrap.rsplit(":", 1)[1]) in published("kafka")
    assert s.stack.redis_port in published("redis")
    assert s.stack.clickhouse_port in published("clickhouse")
    assert services["clickhouse"]["environment"]["CLICKHOUSE_DB"] == s.clickhouse.database
    for name in ("kafka", "redis", "clickhouse", "grafana", "prometheus"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert kafka_env[key] == "1"
    assert services["kafka"]["image"].startswith("apache/kafka:4.0.")
    for mount in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"compose mounts {source}, which does not exist"


def test_nothing_reads_outside_the_repository() -> None:
    """Users clone the repository alone: no code path may name a folder beside it."""
    outside = ["..", "/shared"]  # split, so this file does not name it
    quoted = '"' + "shared" + '"'
    needles = ("".join(outside), quoted + ' / "data"', "parents[2] / " + quoted, "parents[3] / " + quoted)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".csv", ".png", ".json"} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {needle}" for needle in needles if needle in text]
    assert not offenders, offenders
