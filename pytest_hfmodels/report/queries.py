"""Reading a run report out of the results database (read-only)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hfmodels.db.store import open_database
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.report.model import MatrixCell, PerformanceRow, RunInfo, RunReport

if TYPE_CHECKING:
    import duckdb


def _select(cls: type[Any], prefix: str = "", joined: Mapping[str, str] | None = None) -> str:
    """The SELECT list of a dataclass's fields, in order, so that rows map onto it by position.

    `joined` names the expression of a field that comes from another table than `prefix`'s.
    """
    joined = joined or {}
    return ", ".join(joined.get(f.name, f"{prefix}{f.name}") for f in fields(cls))


def _resolve_run_id(con: duckdb.DuckDBPyConnection, db_path: Path, run_id: int | None) -> int:
    if run_id is not None:
        return run_id
    latest = con.execute(
        "SELECT run_id FROM test_runs ORDER BY started_at DESC, run_id DESC LIMIT 1"
    ).fetchone()
    if latest is None:
        raise ResultsError(f"{db_path}: no runs stored yet")
    return int(latest[0])


def latest_run_id(db_path: Path) -> int:
    """The id of the run that started last."""
    con = open_database(db_path, read_only=True)
    try:
        return _resolve_run_id(con, db_path, None)
    finally:
        con.close()


def load_run_report(db_path: Path, run_id: int | None = None) -> RunReport:
    """The matrix and performance rows of `run_id`, or of the latest run."""
    con = open_database(db_path, read_only=True)
    try:
        run_id = _resolve_run_id(con, db_path, run_id)
        run = con.execute(f"SELECT {_select(RunInfo)} FROM test_runs WHERE run_id = ?", [run_id]).fetchone()
        if run is None:
            raise ResultsError(f"{db_path}: no run {run_id}")
        cells = con.execute(
            f"""SELECT {_select(MatrixCell, "c.", {"family": "m.family", "model_key": "c.model_key"})}
                FROM run_compatibility c LEFT JOIN models m USING (model_id) WHERE c.run_id = ?
                ORDER BY c.model_id, c.mode, c.hardware""",
            [run_id],
        ).fetchall()
        columns = _select(PerformanceRow, "p.", {"model_key": "m.model_key", "device_name": "hp.device_name"})
        performance = con.execute(
            f"""SELECT {columns} FROM performance_results p
                LEFT JOIN models m USING (model_id) LEFT JOIN hardware_platforms hp USING (hardware_key)
                WHERE p.run_id = ?
                ORDER BY m.model_key, p.model_id, p.mode, p.hardware, p.batch_size, p.sequence_length""",
            [run_id],
        ).fetchall()
    finally:
        con.close()
    info = RunInfo(*run)
    return RunReport(
        run=replace(info, package_versions=json.loads(str(info.package_versions or "{}"))),
        cells=tuple(MatrixCell(*cell) for cell in cells),
        performance=tuple(PerformanceRow(*row) for row in performance),
    )
