"""Run-to-run comparison of p50 latency, case by case, with a regression threshold.

Cases are matched on model, mode, hardware, scenario, batch size, sequence length and audio
length. Where one run holds several rows for a key (e.g. two precisions), their median p50 stands
for the key. A case without a p50 in either run is listed but can never be a regression: nothing
was measured. The sums are DuckDB's: a report over a 100,000-case run reads only what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_hfmodels.db.store import open_database
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.report.model import CaseChange, CaseKey, RunChanges, RunInfo, StatusChange

if TYPE_CHECKING:
    import duckdb

#: a case is slower (or faster) when its p50 moved by more than this, in percent
DEFAULT_THRESHOLD_PCT = 10.0

_KEY = "model_id, mode, hardware, scenario, batch_size, sequence_length, audio_seconds"

_PER_KEY = f"""SELECT {_KEY}, median(latency_p50_ms) AS p50_ms, count(*) AS cases
              FROM performance_results WHERE run_id = ? GROUP BY {_KEY}"""

_JOINED = f"""WITH a AS ({_PER_KEY}), b AS ({_PER_KEY}), joined AS (
    SELECT coalesce(a.model_id, b.model_id) AS model_id, coalesce(a.mode, b.mode) AS mode,
           coalesce(a.hardware, b.hardware) AS hardware, coalesce(a.scenario, b.scenario) AS scenario,
           coalesce(a.batch_size, b.batch_size) AS batch_size,
           coalesce(a.sequence_length, b.sequence_length) AS sequence_length,
           coalesce(a.audio_seconds, b.audio_seconds) AS audio_seconds,
           a.p50_ms AS p50_a, b.p50_ms AS p50_b, a.cases IS NOT NULL AS in_a, b.cases IS NOT NULL AS in_b,
           CASE WHEN a.p50_ms > 0 AND b.p50_ms IS NOT NULL
                THEN (b.p50_ms - a.p50_ms) / a.p50_ms * 100 END AS delta_pct
    FROM a FULL OUTER JOIN b
      ON a.model_id = b.model_id AND a.mode = b.mode AND a.hardware = b.hardware
     AND a.scenario IS NOT DISTINCT FROM b.scenario
     AND a.batch_size IS NOT DISTINCT FROM b.batch_size
     AND a.sequence_length IS NOT DISTINCT FROM b.sequence_length
     AND a.audio_seconds IS NOT DISTINCT FROM b.audio_seconds)"""

_COMPARE = f"""{_JOINED}
    SELECT model_id, mode, hardware, scenario, batch_size, sequence_length, audio_seconds,
           p50_a, p50_b, in_a, in_b, delta_pct
    FROM joined ORDER BY ALL"""

# The report materialises the joined cases once (a temporary table: the database stays read-only)
# and reads both the counts and the changed cases from it.
_JOINED_TABLE = f"""CREATE OR REPLACE TEMP TABLE report_joined AS {_JOINED} SELECT * FROM joined"""

_COUNTS = """SELECT count(*) FILTER (WHERE delta_pct IS NOT NULL), count(*) FILTER (WHERE in_a AND NOT in_b),
                    count(*) FILTER (WHERE in_b AND NOT in_a)
             FROM report_joined"""

_CHANGED = """SELECT j.model_id, m.model_key, j.mode, j.hardware, j.scenario, j.batch_size, j.sequence_length,
                     j.audio_seconds, j.p50_a, j.p50_b, j.delta_pct
              FROM report_joined j LEFT JOIN models m USING (model_id)
              WHERE abs(j.delta_pct) > ?
              ORDER BY j.delta_pct DESC, j.model_id, j.mode, j.hardware, j.scenario, j.batch_size,
                       j.sequence_length, j.audio_seconds"""

_STATUS_CHANGED = """
    WITH a AS (SELECT model_id, mode, hardware, status FROM run_compatibility WHERE run_id = ?),
         b AS (SELECT model_id, mode, hardware, status FROM run_compatibility WHERE run_id = ?)
    SELECT a.model_id, m.model_key, a.mode, a.hardware, a.status, b.status
    FROM a JOIN b USING (model_id, mode, hardware) LEFT JOIN models m USING (model_id)
    WHERE a.status <> b.status
    ORDER BY coalesce(m.model_key, a.model_id), a.model_id, a.mode, a.hardware"""


@dataclass(frozen=True)
class CaseDelta:
    model_id: str
    mode: str
    hardware: str
    scenario: str | None
    batch_size: int | None
    sequence_length: int | None
    audio_seconds: float | None
    p50_a_ms: float | None  #: None: not measured in run A, or the case is not in run A
    p50_b_ms: float | None
    in_a: bool
    in_b: bool
    delta_pct: float | None  #: (b - a) / a, in percent; None when either side is missing
    regression: bool  #: run B slower than run A by more than the threshold


@dataclass(frozen=True)
class RunComparison:
    run_a: int
    run_b: int
    threshold_pct: float
    deltas: tuple[CaseDelta, ...]

    @property
    def regressions(self) -> tuple[CaseDelta, ...]:
        return tuple(delta for delta in self.deltas if delta.regression)


def _check_threshold(threshold_pct: float) -> None:
    if threshold_pct < 0:
        raise ResultsError(f"regression threshold must not be negative (got {threshold_pct:g}%)")


def check_runs(con: duckdb.DuckDBPyConnection, db_path: Path, *runs: int) -> None:
    """Raise naming the database and the first run it does not hold."""
    for run in runs:
        if con.execute("SELECT 1 FROM test_runs WHERE run_id = ?", [run]).fetchone() is None:
            raise ResultsError(f"{db_path}: no run {run}")


def compare_runs(db_path: Path, run_a: int, run_b: int, threshold_pct: float) -> RunComparison:
    """Per-case p50 deltas of run B against run A, every case; a regression is B slower by > threshold_pct."""
    _check_threshold(threshold_pct)
    con = open_database(db_path, read_only=True)
    try:
        check_runs(con, db_path, run_a, run_b)
        rows = con.execute(_COMPARE, [run_a, run_b]).fetchall()
    finally:
        con.close()
    deltas = tuple(
        CaseDelta(
            model_id, mode, hardware, scenario, batch, length, audio, p50_a, p50_b, bool(in_a), bool(in_b),
            delta, delta is not None and delta > threshold_pct,
        )
        for model_id, mode, hardware, scenario, batch, length, audio, p50_a, p50_b, in_a, in_b, delta in rows
    )  # fmt: skip
    return RunComparison(run_a, run_b, threshold_pct, deltas)


def run_changes(
    con: duckdb.DuckDBPyConnection, baseline: RunInfo, run_id: int, threshold_pct: float, chosen: str
) -> RunChanges:
    """What moved beyond the threshold between `baseline` and `run_id`, and which cells changed status."""
    _check_threshold(threshold_pct)
    con.execute(_JOINED_TABLE, [baseline.run_id, run_id])
    try:
        counts = con.execute(_COUNTS).fetchone()
        changed = con.execute(_CHANGED, [threshold_pct]).fetchall()
    finally:
        con.execute("DROP TABLE report_joined")
    assert counts is not None  # an aggregate always yields one row
    moved = [CaseChange(CaseKey(*key), before, after, delta) for *key, before, after, delta in changed]
    statuses = con.execute(_STATUS_CHANGED, [baseline.run_id, run_id]).fetchall()
    return RunChanges(
        baseline=baseline,
        chosen=chosen,
        threshold_pct=threshold_pct,
        compared=int(counts[0]),
        only_before=int(counts[1]),
        only_after=int(counts[2]),
        regressions=tuple(change for change in moved if change.delta_pct > 0),
        improvements=tuple(sorted((c for c in moved if c.delta_pct < 0), key=lambda c: c.delta_pct)),
        status_changes=tuple(StatusChange(*row) for row in statuses),
    )
