"""Reports over the results database: one run's matrix and timings, and run-to-run comparison.

Everything here reads what was measured; nothing is re-measured or filled in. A cell of the
compatibility matrix is a model x mode x device verdict of one run (one failing case fails it),
the same rule as the `run_compatibility` view it is read from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .db import open_database
from .errors import ResultsError
from .report_compare import CaseDelta, RunComparison, compare_runs, render_comparison

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "CaseDelta",
    "MatrixCell",
    "PerformanceRow",
    "RunComparison",
    "RunInfo",
    "RunReport",
    "compare_runs",
    "compatibility_json",
    "latest_run_id",
    "load_run_report",
    "render_comparison",
    "write_report",
]


@dataclass(frozen=True)
class RunInfo:
    run_id: int
    started_at: datetime
    finished_at: datetime | None
    host: str | None
    command_line: str | None
    git_commit: str | None
    success: bool
    package_versions: Mapping[str, str | None]


@dataclass(frozen=True)
class MatrixCell:
    model_id: str
    model_key: str | None
    mode: str
    hardware: str
    status: str  #: pass | fail | skip
    passed: int
    failed: int
    skipped: int
    error_class: str | None
    error_message: str | None
    suggested_fix: str | None


@dataclass(frozen=True)
class PerformanceRow:
    model_id: str
    model_key: str | None
    mode: str
    hardware: str
    device_name: str | None
    batch_size: int | None
    sequence_length: int | None
    audio_seconds: float | None
    precision: str | None
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    latency_p99_ms: float | None
    latency_mean_ms: float | None
    throughput_per_s: float | None
    peak_memory_mb: float | None
    load_time_s: float | None
    contended: bool | None


@dataclass(frozen=True)
class RunReport:
    run: RunInfo
    cells: tuple[MatrixCell, ...]
    performance: tuple[PerformanceRow, ...]

    @property
    def columns(self) -> list[tuple[str, str]]:
        """Matrix columns: (mode, hardware), sorted."""
        return sorted({(cell.mode, cell.hardware) for cell in self.cells})

    @property
    def models(self) -> list[tuple[str, str | None]]:
        """Matrix rows: (model_id, model_key), sorted by key."""
        return sorted(
            {(cell.model_id, cell.model_key) for cell in self.cells}, key=lambda m: (m[1] or m[0], m[0])
        )

    @cached_property
    def _cells_by_key(self) -> dict[tuple[str, str, str], MatrixCell]:
        return {(c.model_id, c.mode, c.hardware): c for c in self.cells}

    def cell(self, model_id: str, mode: str, hardware: str) -> MatrixCell | None:
        return self._cells_by_key.get((model_id, mode, hardware))


#: the performance table's columns, the same in every report format
PERFORMANCE_COLUMNS = (
    "model",
    "mode",
    "hardware",
    "batch",
    "seq",
    "audio s",
    "precision",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "mean ms",
    "items/s",
    "peak MB",
    "load s",
    "contended",
)


def performance_values(p: PerformanceRow) -> tuple[object, ...]:
    """One performance row's cells, in PERFORMANCE_COLUMNS order."""
    return (
        model_label(p.model_id, p.model_key),
        p.mode,
        p.hardware,
        p.batch_size,
        p.sequence_length,
        p.audio_seconds,
        p.precision,
        p.latency_p50_ms,
        p.latency_p90_ms,
        p.latency_p99_ms,
        p.latency_mean_ms,
        p.throughput_per_s,
        p.peak_memory_mb,
        p.load_time_s,
        p.contended,
    )


def model_label(model_id: str, model_key: str | None) -> str:
    return model_id if not model_key or model_key == model_id else f"{model_key} ({model_id})"


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
            f"""SELECT {_select(MatrixCell)} FROM run_compatibility WHERE run_id = ?
                ORDER BY model_id, mode, hardware""",
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


def compatibility_json(report: RunReport) -> dict[str, Any]:
    """hardware_compatibility_matrix.json: per model (not family), per mode and device, the verdict."""
    models: dict[str, Any] = {}
    for cell in sorted(report.cells, key=lambda c: (c.model_id, c.mode, c.hardware)):
        entry = models.setdefault(cell.model_id, {"model_key": cell.model_key, "modes": {}})
        entry["modes"].setdefault(cell.mode, {})[cell.hardware] = {
            "status": cell.status,
            "passed": cell.passed,
            "failed": cell.failed,
            "skipped": cell.skipped,
            "error_class": cell.error_class,
            "suggested_fix": cell.suggested_fix,
        }
    return {
        "run_id": report.run.run_id,
        "started_at": report.run.started_at.isoformat(),
        "host": report.run.host,
        "models": models,
    }


def write_report(
    db_path: Path, out_dir: Path, *, run_id: int | None = None, fmt: str = "markdown"
) -> list[Path]:
    """Write the report (report.md or report.html), its plots and the matrix JSON; returns the paths."""
    from .plots import latency_png, matrix_png
    from .report_html import render_html
    from .report_markdown import render_markdown

    if fmt not in ("markdown", "html"):
        raise ResultsError(f"unknown report format {fmt!r} (markdown or html)")
    report = load_run_report(db_path, run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {
        "p50 latency": ("latency_p50.png", latency_png(report)),
        "compatibility matrix": ("compatibility_matrix.png", matrix_png(report)),
    }
    written: list[Path] = []
    matrix_path = out_dir / "hardware_compatibility_matrix.json"
    matrix_path.write_text(json.dumps(compatibility_json(report), indent=2) + "\n", encoding="utf-8")
    written.append(matrix_path)
    if fmt == "html":
        html_path = out_dir / "report.html"
        html_path.write_text(
            render_html(report, {t: png for t, (_, png) in images.items() if png}), encoding="utf-8"
        )
        return [*written, html_path]
    for name, png in images.values():
        if png:
            (out_dir / name).write_bytes(png)
            written.append(out_dir / name)
    markdown_path = out_dir / "report.md"
    markdown_path.write_text(
        render_markdown(report, {t: n for t, (n, png) in images.items() if png}), encoding="utf-8"
    )
    return [*written, markdown_path]
