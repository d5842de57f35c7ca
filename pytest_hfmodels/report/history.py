"""A run among the runs before it: which earlier run it is compared with, and the trends of its cases.

The previous run of the same selection is the earlier run holding the most of this run's cases,
the latest of those: a full run compares with the last full run, even when a `-k bert` run came
between them, and a `-k bert` run with the last run that had its cases. Runs are ordered by when
they started (run ids of a merged database are not in time order).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_hfmodels.report.model import CaseKey, RunChanges, Trend, TrendPoint

if TYPE_CHECKING:
    import duckdb

#: trends drawn at most: each is a chart, and a page of hundreds says nothing
MAX_TRENDS = 24
#: runs a trend goes back by default
DEFAULT_HISTORY = 20

_EARLIER = """(r.started_at < t.started_at OR (r.started_at = t.started_at AND r.run_id < t.run_id))"""

_PREVIOUS_OF_SELECTION = f"""
    WITH mine AS (SELECT case_id FROM hardware_compatibility WHERE run_id = $run),
         t AS (SELECT started_at, run_id FROM test_runs WHERE run_id = $run)
    SELECT h.run_id
    FROM hardware_compatibility h JOIN mine USING (case_id) JOIN test_runs r ON r.run_id = h.run_id, t
    WHERE {_EARLIER}
    GROUP BY h.run_id, r.started_at
    ORDER BY count(*) DESC, r.started_at DESC, h.run_id DESC
    LIMIT 1"""

_CASES = """SELECT p.model_id, any_value(m.model_key), p.mode, p.hardware, p.scenario, p.batch_size,
                   p.sequence_length, p.audio_seconds
            FROM performance_results p LEFT JOIN models m USING (model_id)
            WHERE p.run_id = ? AND p.latency_p50_ms IS NOT NULL
            GROUP BY p.model_id, p.mode, p.hardware, p.scenario, p.batch_size, p.sequence_length,
                     p.audio_seconds
            ORDER BY coalesce(any_value(m.model_key), p.model_id), p.model_id, p.mode, p.hardware,
                     p.scenario, p.batch_size, p.sequence_length, p.audio_seconds
            LIMIT ?"""

_TREND_POINTS = f"""
    WITH t AS (SELECT started_at, run_id FROM test_runs WHERE run_id = $run)
    SELECT w.idx, r.run_id, r.started_at, r.git_commit, median(p.latency_p50_ms), median(p.ttft_ms),
           median(p.tpot_ms)
    FROM wanted w
    JOIN performance_results p
      ON p.model_id = w.model_id AND p.mode = w.mode AND p.hardware = w.hardware
     AND p.scenario IS NOT DISTINCT FROM w.scenario
     AND p.batch_size IS NOT DISTINCT FROM w.batch_size
     AND p.sequence_length IS NOT DISTINCT FROM w.sequence_length
     AND p.audio_seconds IS NOT DISTINCT FROM w.audio_seconds
    JOIN test_runs r ON r.run_id = p.run_id, t
    WHERE {_EARLIER} OR r.run_id = t.run_id
    GROUP BY w.idx, r.run_id, r.started_at, r.git_commit
    QUALIFY row_number() OVER (PARTITION BY w.idx ORDER BY r.started_at DESC, r.run_id DESC) <= $history
    ORDER BY w.idx, r.started_at, r.run_id"""


def previous_run_of_selection(con: duckdb.DuckDBPyConnection, run_id: int) -> int | None:
    """The earlier run sharing the most cases with `run_id`, the latest of those; None if none shares one."""
    row = con.execute(_PREVIOUS_OF_SELECTION, {"run": run_id}).fetchone()
    return None if row is None else int(row[0])


def trend_cases(
    con: duckdb.DuckDBPyConnection, run_id: int, changes: RunChanges | None
) -> list[tuple[str, CaseKey]]:
    """The cases whose trends are drawn, each with why: what regressed, then what improved, the
    largest moves first; a run of at most MAX_TRENDS measured cases shows every one of them."""
    chosen: dict[CaseKey, str] = {}
    if changes is not None:
        for change in changes.regressions[:MAX_TRENDS]:
            chosen[change.case] = "regressed"
        for change in changes.improvements[: MAX_TRENDS - len(chosen)]:
            chosen[change.case] = "improved"
    rows = con.execute(_CASES, [run_id, MAX_TRENDS + 1]).fetchall()
    if len(rows) <= MAX_TRENDS:
        for row in rows:
            chosen.setdefault(CaseKey(*row), "")
    return [(why, case) for case, why in chosen.items()]


def load_trends(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    cases: list[tuple[str, CaseKey]],
    history: int,
    threshold_pct: float,
) -> tuple[Trend, ...]:
    """Each case's p50 (TTFT and TPOT for generate cases) over the last `history` runs that measured
    it up to `run_id`; a case measured in one run only has no trend."""
    if not cases:
        return ()
    # A temporary table (the database stays read-only) of the cases, joined on all their keys at once.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE wanted (idx INTEGER, model_id VARCHAR, mode VARCHAR,
               hardware VARCHAR, scenario VARCHAR, batch_size INTEGER, sequence_length INTEGER,
               audio_seconds DOUBLE)"""
    )
    try:
        con.executemany(
            "INSERT INTO wanted VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    idx,
                    k.model_id,
                    k.mode,
                    k.hardware,
                    k.scenario,
                    k.batch_size,
                    k.sequence_length,
                    k.audio_seconds,
                ]
                for idx, (_, k) in enumerate(cases)
            ],
        )
        rows = con.execute(_TREND_POINTS, {"run": run_id, "history": history}).fetchall()
    finally:
        con.execute("DROP TABLE wanted")
    points: dict[int, list[TrendPoint]] = {}
    for idx, *point in rows:
        points.setdefault(int(idx), []).append(TrendPoint(*point))
    trends = []
    for idx, (why, case) in enumerate(cases):
        series = points.get(idx, [])
        if len(series) < 2:
            continue
        steps = steps_up([point.p50_ms for point in series], threshold_pct)
        trends.append(Trend(case, tuple(series), why, steps, regression_start(series, steps, threshold_pct)))
    return tuple(trends)


def steps_up(values: list[float | None], threshold_pct: float) -> tuple[int, ...]:
    """Indexes where a value rose by more than threshold_pct over the measured value before it."""
    steps = []
    previous: float | None = None
    for index, value in enumerate(values):
        if value is None:
            continue
        if previous is not None and previous > 0 and (value - previous) / previous * 100 > threshold_pct:
            steps.append(index)
        previous = value
    return tuple(steps)


def regression_start(series: list[TrendPoint], steps: tuple[int, ...], threshold_pct: float) -> int | None:
    """The latest step up that the last point still stands above (the regression in force), if any."""
    last = series[-1].p50_ms
    if last is None:
        return None
    for step in reversed(steps):
        before = next((p.p50_ms for p in reversed(series[:step]) if p.p50_ms is not None), None)
        if before is not None and before > 0 and (last - before) / before * 100 > threshold_pct:
            return step
    return None
