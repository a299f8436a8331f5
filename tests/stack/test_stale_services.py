"""`stack up` never takes a service started by another installation for its own.

The services are shared per user, so a checkout may find them running with another checkout's code
(an embedded ClickHouse whose environment lacked a codec answered every insert with an error while
`stack up` said "ready"). Here a second installation, a virtualenv beside this one, starts the
embedded ClickHouse on a folder and port of the test's own; then this installation's `stack up` must
restart it on the same data: once while the other interpreter still exists (other code), once after
it was deleted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from schemas.settings import StackSettings
from stack import manager
from stack.services import ClickHouseService, stale_reason
from tests.deployment import free_port

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]


def other_installation(where: Path) -> Path:
    """A second virtualenv, with its own interpreter path, seeing the same packages."""
    venv = Path(sys.prefix)
    (where / "bin").mkdir(parents=True)
    (where / "bin" / "python").symlink_to(Path(sys.executable).resolve())
    shutil.copy(venv / "pyvenv.cfg", where / "pyvenv.cfg")
    (where / "lib").symlink_to(venv / "lib")
    return where / "bin" / "python"


def start_with(python: Path, settings: StackSettings) -> None:
    env = {
        **os.environ,
        "SPENDSTREAM_STACK__HOME": str(settings.home),
        "SPENDSTREAM_STACK__CLICKHOUSE_PORT": str(settings.clickhouse_port),
    }
    script = (
        "from schemas.settings import Settings; from stack import manager; manager.up(Settings().stack, ['clickhouse'])"
    )
    subprocess.run([str(python), "-c", script], env=env, cwd=ROOT, check=True, timeout=120)


def query(settings: StackSettings, sql: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{settings.clickhouse_port}/", data=sql.encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


def test_stack_up_restarts_a_service_of_another_installation_on_its_data(tmp_path: Path) -> None:
    settings = StackSettings(home=tmp_path / "home", clickhouse_port=free_port(), start_timeout_s=60)
    service = ClickHouseService(settings)
    other = other_installation(tmp_path / "other-venv")
    try:
        # 1. Another installation's interpreter started it: other code, so stale, and not "ready" for us.
        start_with(other, settings)
        first_pid = service.proc.pid()
        assert first_pid is not None
        owner = service.proc.owner()
        assert owner is not None and owner.interpreter == str(other)
        assert "other code" in (stale_reason(service) or "")
        [row] = manager.status(settings, ["clickhouse"])
        assert row.running and not row.ready and row.stale
        query(settings, "CREATE TABLE default.kept (n UInt8) ENGINE = MergeTree ORDER BY n")
        query(settings, "INSERT INTO default.kept VALUES (7)")

        [report] = manager.up(settings, ["clickhouse"])
        assert report.started and report.restarted and "other code" in report.restarted
        assert service.proc.pid() not in (None, first_pid)
        assert service.proc.owner() == service.wanted_owner()
        assert stale_reason(service) is None
        assert query(settings, "SELECT n FROM default.kept").strip() == "7"  # the data survived the restart
        [report] = manager.up(settings, ["clickhouse"])
        assert not report.started and report.restarted is None  # ours now: left alone

        # 2. Started again by the other installation, whose folder is then deleted: its interpreter is gone.
        manager.down(settings, ["clickhouse"])
        start_with(other, settings)
        shutil.rmtree(tmp_path / "other-venv")
        assert "is gone" in (stale_reason(service) or "")
        [report] = manager.up(settings, ["clickhouse"])
        assert report.restarted and "is gone" in report.restarted
        assert stale_reason(service) is None
        assert query(settings, "SELECT n FROM default.kept").strip() == "7"
    finally:
        manager.down(settings, ["clickhouse"])


def test_a_pid_file_without_an_owner_is_stale(tmp_path: Path) -> None:
    """Services started by a spendstream that did not record its owner are restarted too."""
    settings = StackSettings(home=tmp_path / "home", clickhouse_port=free_port(), start_timeout_s=60)
    service = ClickHouseService(settings)
    try:
        manager.up(settings, ["clickhouse"])
        pid = service.proc.pid()
        service.proc.pid_file.write_text(f"{pid}\n")
        assert "does not say what started it" in (stale_reason(service) or "")
        [report] = manager.up(settings, ["clickhouse"])
        assert report.restarted and service.proc.pid() != pid
    finally:
        manager.down(settings, ["clickhouse"])


def test_status_names_the_installation(tmp_path: Path) -> None:
    env = {**os.environ, "SPENDSTREAM_STACK__HOME": str(tmp_path), "SPENDSTREAM_STACK__REDIS_PORT": str(free_port())}
    cli = [sys.executable, "-m", "admin.cli", "stack"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=60, check=False)

    try:
        up = run("up", "redis")
        assert up.returncode == 0, up.stdout + up.stderr
        status = run("status", "redis")
        assert status.returncode == 0
        assert f"started by {ROOT}" in status.stdout
        bad = run("status", "postgres")
        assert bad.returncode == 2 and "no service named postgres" in bad.stderr
    finally:
        run("down", "redis")
