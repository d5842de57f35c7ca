"""Reading a run report out of the results database (read-only).

Every sum, median and ranking is DuckDB's, and only what the report shows comes back to Python:
the summary's counts, the cells of the matrix, the cases that changed, the points of the charts
drawn. A run of 90,000 cases in a database of a million rows reads in 0.4 s of CPU (2 cores), its
performance table 0.2 s more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hfmodels.db.store import open_database
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.report.compare import DEFAULT_THRESHOLD_PCT, check_runs, run_changes
from pytest_hfmodels.report.history import (
    DEFAULT_HISTORY,
    load_trends,
    previous_run_of_selection,
    trend_cases,
)
from pytest_hfmodels.report.model import (
    BASELINE_MODE,
    MAX_PLOTTED_MODELS,
    FailureClass,
    Fastest,
    GenerationRow,
    MatrixCell,
    RunChanges,
    RunInfo,
    RunReport,
    ScalingPoint,
    StatusCount,
)
from pytest_hfmodels.report.table import performance_table

if TYPE_CHECKING:
    import duckdb

_STATUS_COUNTS = """SELECT mode, hardware, count(*) FILTER (WHERE status = 'pass'),
                           count(*) FILTER (WHERE status = 'fail'), count(*) FILTER (WHERE status = 'skip')
                    FROM hardware_compatibility WHERE run_id = ?
                    GROUP BY mode, hardware ORDER BY mode, hardware"""

_FAILURE_CLASSES = """SELECT coalesce(error_class, 'unclassified') AS class, count(*),
                             arg_min(suggested_fix, case_id) FILTER (WHERE suggested_fix IS NOT NULL),
                             min(case_id), arg_min(error_message, case_id)
                      FROM hardware_compatibility WHERE run_id = ? AND status = 'fail'
                      GROUP BY class ORDER BY count(*) DESC, class"""

# Per model, device and batch: each mode's p50 is the one at the shortest input it measured (a
# pipeline's own text, an exported audio model's own clip, else the smallest length of the sweep:
# the inputs closest across modes); the fastest mode is the lowest; its speed-up is the median, over
# the lengths it shares with from_pretrained, of from_pretrained's p50 over its own.
_FASTEST = """
    WITH per_shape AS (
        SELECT model_id, hardware, mode, batch_size, sequence_length, audio_seconds,
               median(latency_p50_ms) AS p50
        FROM performance_results
        WHERE run_id = $run AND scenario = 'forward' AND latency_p50_ms > 0
        GROUP BY ALL),
    per_mode AS (
        SELECT model_id, hardware, mode, batch_size,
               arg_min(p50, coalesce(CAST(sequence_length AS DOUBLE), audio_seconds, 0)) AS p50
        FROM per_shape GROUP BY ALL),
    fastest AS (
        SELECT model_id, hardware, batch_size, arg_min(mode, (p50, mode)) AS mode, min(p50) AS p50,
               count(*) AS modes
        FROM per_mode GROUP BY ALL),
    ratios AS (
        SELECT s.model_id, s.hardware, s.mode, s.batch_size, median(b.p50) AS baseline,
               median(b.p50 / s.p50) AS ratio
        FROM per_shape s
        JOIN per_shape b ON b.model_id = s.model_id AND b.hardware = s.hardware AND b.mode = $baseline
                        AND b.batch_size IS NOT DISTINCT FROM s.batch_size
                        AND b.sequence_length IS NOT DISTINCT FROM s.sequence_length
                        AND b.audio_seconds IS NOT DISTINCT FROM s.audio_seconds
        GROUP BY ALL)
    SELECT f.model_id, m.model_key, f.hardware, f.batch_size, f.mode, f.p50, r.baseline, r.ratio, f.modes
    FROM fastest f
    LEFT JOIN ratios r ON r.model_id = f.model_id AND r.hardware = f.hardware AND r.mode = f.mode
                      AND r.batch_size IS NOT DISTINCT FROM f.batch_size
    LEFT JOIN models m ON m.model_id = f.model_id
    ORDER BY coalesce(m.model_key, f.model_id), f.model_id, f.hardware, f.batch_size"""

# Along batch sizes at each series' smallest length; along lengths at its smallest batch; only the
# first MAX_PLOTTED_MODELS models, the ones drawn.
_SCALING = """
    WITH measured AS (
        SELECT p.model_id, m.model_key, p.mode, p.hardware, p.batch_size,
               coalesce(CAST(p.sequence_length AS DOUBLE), p.audio_seconds) AS length,
               CASE WHEN p.sequence_length IS NOT NULL THEN 'tokens'
                    WHEN p.audio_seconds IS NOT NULL THEN 'audio s' END AS unit,
               p.latency_p50_ms, p.throughput_per_s
        FROM performance_results p LEFT JOIN models m USING (model_id)
        WHERE p.run_id = $run AND p.scenario = 'forward' AND p.latency_p50_ms IS NOT NULL),
    shown AS (
        SELECT model_id FROM (SELECT DISTINCT model_id, coalesce(model_key, model_id) AS name FROM measured)
        ORDER BY name, model_id LIMIT $models),
    series AS (
        SELECT model_id, mode, hardware, min(length) AS length, min(batch_size) AS batch
        FROM measured GROUP BY ALL)
    SELECT r.model_id, any_value(r.model_key), r.mode, r.hardware, 'batch', r.batch_size,
           median(r.latency_p50_ms), median(r.throughput_per_s)
    FROM measured r JOIN shown USING (model_id) JOIN series s USING (model_id, mode, hardware)
    WHERE r.length IS NOT DISTINCT FROM s.length AND r.batch_size IS NOT NULL
    GROUP BY r.model_id, r.mode, r.hardware, r.batch_size
    UNION ALL
    SELECT r.model_id, any_value(r.model_key), r.mode, r.hardware, r.unit, r.length,
           median(r.latency_p50_ms), median(r.throughput_per_s)
    FROM measured r JOIN shown USING (model_id) JOIN series s USING (model_id, mode, hardware)
    WHERE r.batch_size IS NOT DISTINCT FROM s.batch AND r.length IS NOT NULL
    GROUP BY r.model_id, r.mode, r.hardware, r.unit, r.length
    ORDER BY 1, 3, 4, 5, 6"""

_SCALED_MODELS = """SELECT count(DISTINCT model_id) FROM performance_results
                    WHERE run_id = ? AND scenario = 'forward' AND latency_p50_ms IS NOT NULL"""

_GENERATION = """
    WITH baseline AS (
        SELECT model_id, hardware, batch_size, sequence_length, new_tokens, any_value(output_digest) AS digest
        FROM performance_results
        WHERE run_id = $run AND scenario = 'generate' AND mode = $baseline AND output_digest IS NOT NULL
        GROUP BY ALL)
    SELECT p.model_id, m.model_key, p.mode, p.hardware, p.batch_size, p.sequence_length, p.new_tokens,
           p.ttft_ms, p.tpot_ms, p.tpot_p90_ms, p.decode_tokens_per_s, p.prefill_tokens_per_s,
           p.latency_p50_ms,
           CASE WHEN p.mode <> $baseline AND p.output_digest IS NOT NULL
                THEN p.output_digest = b.digest END,
           p.output_sample
    FROM performance_results p LEFT JOIN models m USING (model_id)
    LEFT JOIN baseline b ON b.model_id = p.model_id AND b.hardware = p.hardware
                        AND b.batch_size IS NOT DISTINCT FROM p.batch_size
                        AND b.sequence_length IS NOT DISTINCT FROM p.sequence_length
                        AND b.new_tokens IS NOT DISTINCT FROM p.new_tokens
    WHERE p.run_id = $run AND p.scenario = 'generate'
    ORDER BY coalesce(m.model_key, p.model_id), p.model_id, p.hardware, p.batch_size, p.sequence_length,
             p.mode, p.precision"""


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


def _run_info(con: duckdb.DuckDBPyConnection, db_path: Path, run_id: int) -> RunInfo:
    row = con.execute(f"SELECT {_select(RunInfo)} FROM test_runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise ResultsError(f"{db_path}: no run {run_id}")
    info = RunInfo(*row)
    return replace(info, package_versions=json.loads(str(info.package_versions or "{}")))


def load_run_report(
    db_path: Path,
    run_id: int | None = None,
    *,
    baseline: int | None = None,
    history: int = DEFAULT_HISTORY,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    table: str | None = None,
) -> RunReport:
    """The report of `run_id`, or of the latest run.

    `baseline`: the run compared with (default: the previous run of the same selection);
    `history`: how many runs a trend goes back; `threshold_pct`: how far a p50 moves before it
    counts as changed; `table`: the performance table's form (markdown, json), None to count it only.
    """
    con = open_database(db_path, read_only=True)
    try:
        run_id = _resolve_run_id(con, db_path, run_id)
        run = _run_info(con, db_path, run_id)
        if baseline is not None:
            check_runs(con, db_path, baseline)
        changes = _changes(con, db_path, run_id, baseline, threshold_pct)
        trends = load_trends(con, run_id, trend_cases(con, run_id, changes), history, threshold_pct)
        cells = con.execute(
            f"""SELECT {_select(MatrixCell, "c.", {"family": "m.family", "model_key": "c.model_key"})}
                FROM run_compatibility c LEFT JOIN models m USING (model_id) WHERE c.run_id = ?
                ORDER BY c.model_id, c.mode, c.hardware""",
            [run_id],
        ).fetchall()
        runs = con.execute("SELECT count(*) FROM test_runs").fetchone()
        scaled = con.execute(_SCALED_MODELS, [run_id]).fetchone()
        report = RunReport(
            run=run,
            runs_stored=int(runs[0]) if runs else 0,
            cells=tuple(MatrixCell(*cell) for cell in cells),
            status_counts=tuple(
                StatusCount(*row) for row in con.execute(_STATUS_COUNTS, [run_id]).fetchall()
            ),
            failure_classes=tuple(
                FailureClass(*row) for row in con.execute(_FAILURE_CLASSES, [run_id]).fetchall()
            ),
            fastest=tuple(
                Fastest(*row)
                for row in con.execute(_FASTEST, {"run": run_id, "baseline": BASELINE_MODE}).fetchall()
            ),
            changes=changes,
            trends=trends,
            history=history,
            scaling=tuple(
                ScalingPoint(*row)
                for row in con.execute(_SCALING, {"run": run_id, "models": MAX_PLOTTED_MODELS}).fetchall()
            ),
            scaled_models=int(scaled[0]) if scaled else 0,
            generation=tuple(
                GenerationRow(*row)
                for row in con.execute(_GENERATION, {"run": run_id, "baseline": BASELINE_MODE}).fetchall()
            ),
            table=performance_table(con, run_id, table),
        )
    finally:
        con.close()
    return report


def _changes(
    con: duckdb.DuckDBPyConnection, db_path: Path, run_id: int, baseline: int | None, threshold_pct: float
) -> RunChanges | None:
    if baseline is not None:
        return run_changes(con, _run_info(con, db_path, baseline), run_id, threshold_pct, "asked for")
    previous = previous_run_of_selection(con, run_id)
    if previous is None:
        return None
    return run_changes(
        con,
        _run_info(con, db_path, previous),
        run_id,
        threshold_pct,
        "the previous run of the same selection",
    )
