"""Report runs in ClickHouse: every attempt with its outcome (``report_runs``), the files a run made
(``report_files``, so any console can serve them again), and what the scheduler asks before a run."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sinks.tables import REPORT_FILES, REPORT_RUNS, ReportFileRow, ReportRunRow, Table

__all__ = ["RunReader", "RunStore", "last_settled", "record_files", "record_run", "run_file", "run_state", "runs_of"]


class RunReader(Protocol):
    @property
    def database(self) -> str: ...

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...


class RunStore(RunReader, Protocol):
    def insert(self, table: Table[Any], rows: Sequence[tuple[Any, ...]]) -> None: ...


def record_run(store: RunStore, row: ReportRunRow) -> None:
    store.insert(REPORT_RUNS, [row])


def record_files(store: RunStore, org_id: str, run_id: str, files: Sequence[tuple[str, bytes]]) -> None:
    store.insert(REPORT_FILES, [ReportFileRow(run_id, org_id, name, content) for name, content in files])


def run_state(store: RunReader, org_id: str, template: str, due_at: datetime) -> tuple[int, int]:
    """(finished attempts, failed attempts) of one run."""
    rows = store.query(
        f"SELECT countIf(outcome != 'failed'), countIf(outcome = 'failed') FROM {store.database}.report_runs "
        "WHERE org_id = {org:String} AND template = {template:String} AND due_at = {due:DateTime('UTC')}",
        {"org": org_id, "template": template, "due": due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")},
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


def last_settled(store: RunReader, org_id: str, template: str, max_attempts: int) -> datetime | None:
    """The latest scheduled time of ``template`` that needs no more runs: finished, or failed
    ``max_attempts`` times."""
    rows = store.query(
        f"SELECT max(due_at) FROM (SELECT due_at FROM {store.database}.report_runs "
        "WHERE org_id = {org:String} AND template = {template:String} GROUP BY due_at "
        "HAVING countIf(outcome != 'failed') > 0 OR countIf(outcome = 'failed') >= {tries:UInt16}) "
        "SETTINGS aggregate_functions_null_for_empty = 1",
        {"org": org_id, "template": template, "tries": max_attempts},
    )
    value = rows[0][0] if rows else None
    return value if isinstance(value, datetime) else None


def runs_of(store: RunReader, org_id: str, limit: int = 50) -> list[ReportRunRow]:
    """The org's latest attempts, newest first."""
    rows = store.query(
        f"{REPORT_RUNS.select(store.database)} WHERE org_id = {{org:String}} "
        "ORDER BY started_at DESC LIMIT {limit:UInt32}",
        {"org": org_id, "limit": limit},
    )
    return [REPORT_RUNS.of(row) for row in rows]


def run_file(store: RunReader, org_id: str, run_id: str, name: str) -> bytes | None:
    rows = store.query(
        f"SELECT base64Encode(content) FROM {store.database}.report_files "
        "WHERE org_id = {org:String} AND run_id = {run:String} AND name = {name:String} LIMIT 1",
        {"org": org_id, "run": run_id, "name": name},
    )
    return base64.b64decode(rows[0][0]) if rows else None
