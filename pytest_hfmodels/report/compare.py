"""Run-to-run comparison of p50 latency, case by case, with a regression threshold.

Cases are matched on model, mode, hardware, batch size, sequence length and audio length. Where one run holds
several rows for a key (e.g. two precisions), their median p50 stands for the key. A case
without a p50 in either run is listed but can never be a regression: nothing was measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_hfmodels.db.store import open_database
from pytest_hfmodels.errors import ResultsError

_PER_KEY = """SELECT model_id, mode, hardware, batch_size, sequence_length, audio_seconds,
                     median(latency_p50_ms) AS p50_ms, count(*) AS cases
              FROM performance_results WHERE run_id = ?
              GROUP BY model_id, mode, hardware, batch_size, sequence_length, audio_seconds"""

_COMPARE = f"""WITH a AS ({_PER_KEY}), b AS ({_PER_KEY})
    SELECT coalesce(a.model_id, b.model_id), coalesce(a.mode, b.mode), coalesce(a.hardware, b.hardware),
           coalesce(a.batch_size, b.batch_size), coalesce(a.sequence_length, b.sequence_length),
           coalesce(a.audio_seconds, b.audio_seconds),
           a.p50_ms, b.p50_ms, a.cases IS NOT NULL, b.cases IS NOT NULL
    FROM a FULL OUTER JOIN b
      ON a.model_id = b.model_id AND a.mode = b.mode AND a.hardware = b.hardware
     AND a.batch_size IS NOT DISTINCT FROM b.batch_size
     AND a.sequence_length IS NOT DISTINCT FROM b.sequence_length
     AND a.audio_seconds IS NOT DISTINCT FROM b.audio_seconds
    ORDER BY 1, 2, 3, 4, 5, 6"""


@dataclass(frozen=True)
class CaseDelta:
    model_id: str
    mode: str
    hardware: str
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


def compare_runs(db_path: Path, run_a: int, run_b: int, threshold_pct: float) -> RunComparison:
    """Per-case p50 deltas of run B against run A; a regression is B slower by > threshold_pct."""
    if threshold_pct < 0:
        raise ResultsError(f"regression threshold must not be negative (got {threshold_pct:g}%)")
    con = open_database(db_path, read_only=True)
    try:
        for run in (run_a, run_b):
            if con.execute("SELECT 1 FROM test_runs WHERE run_id = ?", [run]).fetchone() is None:
                raise ResultsError(f"{db_path}: no run {run}")
        rows = con.execute(_COMPARE, [run_a, run_b]).fetchall()
    finally:
        con.close()
    deltas = []
    for model_id, mode, hardware, batch, seq, audio, p50_a, p50_b, in_a, in_b in rows:
        delta = None
        if p50_a is not None and p50_b is not None and p50_a > 0:
            delta = (p50_b - p50_a) / p50_a * 100.0
        deltas.append(
            CaseDelta(
                model_id,
                mode,
                hardware,
                batch,
                seq,
                audio,
                p50_a,
                p50_b,
                bool(in_a),
                bool(in_b),
                delta,
                delta is not None and delta > threshold_pct,
            )
        )
    return RunComparison(run_a, run_b, threshold_pct, tuple(deltas))


def render_comparison(comparison: RunComparison) -> str:
    """A Markdown table of the comparison, regressions marked."""
    lines = [
        f"# run {comparison.run_b} against run {comparison.run_a} (regression: p50 slower by > "
        f"{comparison.threshold_pct:g}%)",
        "",
        "| model | mode | hardware | batch | seq | audio s | p50 A ms | p50 B ms | delta | |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in comparison.deltas:
        if not (d.in_a and d.in_b):
            verdict = "only in A" if d.in_a else "only in B"
        else:
            verdict = "REGRESSION" if d.regression else ""
        cells = [
            d.model_id,
            d.mode,
            d.hardware,
            _text(d.batch_size),
            _text(d.sequence_length),
            _text(d.audio_seconds),
            _text(d.p50_a_ms),
            _text(d.p50_b_ms),
            "" if d.delta_pct is None else f"{d.delta_pct:+.1f}%",
            verdict,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"{len(comparison.regressions)} regressions in {len(comparison.deltas)} cases"]
    return "\n".join(lines) + "\n"


def _text(value: float | int | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)
