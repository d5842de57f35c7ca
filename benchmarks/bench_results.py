"""How fast the results database stores and reports, each figure next to a baseline of the same run.

    .venv/bin/python benchmarks/bench_results.py [--rows 100000] [--runs 10]

The rows are SYNTHETIC (a seeded generator, labelled so in every line printed and in the stored
command line): this measures the database and report code, not models. Everything is written
under a temporary directory, never to the default database.

Measured, each with its baseline:
- ingesting one run of --rows rows as the plugin does: its recorder puts each row into `RunRows` as
  the case finishes (converted to Arrow 4,096 rows at a time while the run goes: timed apart, per
  row), and at session end `store_run` converts the last partial batch and writes one DuckDB
  transaction (a run it spilled instead stops the script): `ingest_100k_rows_s` is that session-end
  store, median of --runs runs, against DuckDB alone taking the same rows already as an Arrow table
  (`INSERT INTO t SELECT * FROM arrow_table`, one transaction, its own file, DuckDB's defaults);
  under it `store_run` of a plain list (every row converted at the end), the DuckDB-alone baseline
  with the file attached and set as the store writes it (its row groups, the rows' order not kept),
  and the two phases of a store;
- with --runs runs stored (1M rows by default): the compatibility_matrix view over all of them,
  and the Markdown and the HTML report of the latest run, against DuckDB alone reading that run's
  rows as Arrow (what every report has to read, at the least);
- on the same two runs exported as pytest-benchmark JSON files, `pytest-benchmark compare
  --between median A B`, against hfmodels' `compare_runs` of the two runs.

The last line printed is one JSON object of the figures (seconds), baselines included.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pyarrow as pa

from pytest_hfmodels.db.environment import RunEnvironment
from pytest_hfmodels.db.spill import RunRows, rows_table
from pytest_hfmodels.db.store import (
    ROW_GROUP_ROWS,
    StoredRun,
    connect_writer,
    insert_run,
    open_database,
    store_run,
)
from pytest_hfmodels.report.compare import compare_runs
from pytest_hfmodels.report.write import write_report
from pytest_hfmodels.results import Measurement, ResultRow

LABEL = "SYNTHETIC"
MODES = ("pipeline", "from_pretrained", "onnxruntime", "openvino")
HARDWARE = ("cpu", "cuda", "cuda1", "ov-gpu", "mps")
BATCHES = (1, 2, 4, 8)
SEQUENCES = (16, 32, 64, 128, 256)
#: in run B, this share of cases is 30% slower, so the comparison has regressions to find
SLOWED_SHARE = 0.01
T = TypeVar("T")


def synthetic_rows(count: int, seed: int, slowdown: float = 1.0) -> list[ResultRow]:
    """`count` rows of SYNTHETIC cases; `slowdown` multiplies the latency of SLOWED_SHARE of them."""
    per_model = len(MODES) * len(HARDWARE) * len(BATCHES) * len(SEQUENCES)
    models = -(-count // per_model)
    generator = np.random.default_rng(seed)
    p50 = generator.lognormal(mean=1.5, sigma=0.8, size=count)
    slowed = np.random.default_rng(seed + 1).random(count) < SLOWED_SHARE
    p50 = np.where(slowed, p50 * slowdown, p50)
    statuses = generator.choice(["pass", "fail", "skip"], size=count, p=[0.9, 0.05, 0.05])
    rows: list[ResultRow] = []
    index = 0
    for model in range(models):
        for mode in MODES:
            for hardware in HARDWARE:
                for batch in BATCHES:
                    for seq in SEQUENCES:
                        if index == count:
                            return rows
                        rows.append(
                            _row(model, mode, hardware, batch, seq, float(p50[index]), str(statuses[index]))
                        )
                        index += 1
    return rows


def _row(model: int, mode: str, hardware: str, batch: int, seq: int, p50: float, status: str) -> ResultRow:
    key = f"synthetic-{model:04d}"
    case = f"{key}-{mode}-{hardware}-b{batch}-s{seq}"
    measured = status == "pass"
    return ResultRow(
        nodeid=f"synthetic.py::test_model[{case}]", case_id=case, model_key=key, model_id=f"synthetic/{key}",
        family="synthetic", task="feature-extraction", source="synthetic", weights="random",
        model_type="bert", architecture="BertModel", mode=mode, hardware=hardware,
        device_name=f"synthetic {hardware}",
        status=status, error_class="RuntimeError" if status == "fail" else None,
        error_message="synthetic failure" if status == "fail" else None, suggested_fix=None,
        duration_s=0.01, worker="main", parameters=4_000_000,
        measurement=Measurement(
            batch_size=batch, sequence_length=seq, precision="fp32",
            latency_mean_ms=p50 * 1.05 if measured else None, latency_p50_ms=p50 if measured else None,
            latency_p90_ms=p50 * 1.2 if measured else None, latency_p95_ms=p50 * 1.3 if measured else None,
            latency_p99_ms=p50 * 1.5 if measured else None, latency_stdev_ms=p50 * 0.1 if measured else None,
            iterations=20 if measured else None, warmup=3 if measured else None, timer="synthetic",
        ),
    )  # fmt: skip


def pytest_benchmark_json(rows: list[ResultRow], path: Path) -> None:
    """The same rows as a pytest-benchmark JSON file (stats in seconds, as pytest-benchmark stores them)."""
    benchmarks = []
    for row in rows:
        m = row.measurement
        if m.latency_p50_ms is None or m.latency_mean_ms is None or m.latency_stdev_ms is None:
            continue  # pytest-benchmark has no way to store a case that measured nothing
        p50, mean = m.latency_p50_ms / 1000, m.latency_mean_ms / 1000
        benchmarks.append({
            "group": None, "name": f"test_model[{row.case_id}]", "fullname": row.nodeid,
            "params": None, "param": row.case_id, "extra_info": {"label": LABEL},
            "options": {"disable_gc": False, "timer": "synthetic", "min_rounds": 5, "max_time": 1.0,
                        "min_time": 5e-06, "precision": None, "confidence": None, "warmup": False},
            "stats": {"min": p50 * 0.9, "max": p50 * 1.8, "mean": mean, "stddev": m.latency_stdev_ms / 1000,
                      "rounds": m.iterations, "median": p50, "iqr": p50 * 0.13, "q1": p50 * 0.95,
                      "q3": p50 * 1.08, "iqr_outliers": 0, "stddev_outliers": 0, "outliers": "0;0",
                      "ld15iqr": p50 * 0.9, "hd15iqr": p50 * 1.3, "ops": 1 / mean, "total": mean * 20,
                      "iterations": 1},
        })  # fmt: skip
    document = {
        "machine_info": {"node": LABEL}, "commit_info": {"id": LABEL}, "benchmarks": benchmarks,
        "datetime": "2026-01-01T00:00:00+00:00", "version": "5.3.1",
    }  # fmt: skip
    path.write_text(json.dumps(document))


def timed(action: Callable[[], T]) -> tuple[float, T]:
    """Seconds `action` takes, and its result.

    The garbage of earlier steps is collected first, untimed: a full collection walks every live
    object (the synthetic rows: over a million), and it would otherwise land on whichever step
    happened to allocate next (0.3 s on the compatibility_matrix query after the ingests). What
    `action` allocates itself can still set off a collection inside it, and counts.
    """
    gc.collect()
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def report_line(what: str, seconds: float | None, baseline: float | None = None, extra: str = "") -> None:
    """One figure, and its baseline of the same run beside it (with the ratio) where it has one."""
    figure = f"{seconds:9.3f} s" if seconds is not None else f"{'failed':>11}"
    against = f"{baseline:9.3f} s {seconds / baseline:6.2f}x" if seconds is not None and baseline else ""
    print(f"  {what:<62} {figure} {against:>19}  {extra}".rstrip())


def store_table(path: Path, environment: RunEnvironment, table: pa.Table) -> None:
    """The DuckDB phase of `store_run`: open, one transaction, close (which may checkpoint)."""
    con = open_database(path)
    try:
        insert_run(con, environment, table, 0)
    finally:
        con.close()


def duckdb_alone(path: Path, table: pa.Table, *, as_the_store: bool = False) -> None:
    """The baseline of an ingest: DuckDB taking rows already in Arrow, in one transaction.

    `as_the_store`: the file opened by the store's `connect_writer` (row groups of ROW_GROUP_ROWS,
    each written as soon as it is full, the rows' order not kept) instead of with DuckDB's defaults.
    """
    con = connect_writer(path) if as_the_store else duckdb.connect(str(path))
    try:
        con.register("arrow_table", table)
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO t SELECT * FROM arrow_table")
        con.execute("COMMIT")
    finally:
        con.close()


def read_run_alone(path: Path, run_id: int) -> int:
    """The baseline of a report: DuckDB reading one run's rows (both tables) as Arrow."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return sum(
            con.sql(f"SELECT * FROM {name} WHERE run_id = ?", params=[run_id]).to_arrow_table().num_rows
            for name in ("hardware_compatibility", "performance_results")
        )
    finally:
        con.close()


def timed_report(folder: Path, db: Path, fmt: str) -> tuple[float | None, str]:
    """`write_report` of the latest run; a failure is printed and leaves the figure empty."""
    try:
        seconds, written = timed(lambda: write_report(db, folder / f"report-{fmt}", fmt=fmt))
    except Exception as exc:  # the report code changes under this script: say why, keep the rest
        traceback.print_exc()
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return seconds, f"{len(written)} files"


def stored_run(db: Path, environment: RunEnvironment, rows: list[ResultRow] | RunRows) -> int:
    """`store_run` as the plugin calls it; a spill file instead of the database is not an ingest."""
    stored: StoredRun = store_run(db, environment, rows, exit_status=0)
    if stored.run_id is None:
        raise SystemExit(f"the run was spilled to {stored.spill_path}, not stored: {stored.reason}")
    return stored.run_id


def arrived(rows: list[ResultRow]) -> RunRows:
    """The rows put one by one, as the recorder puts each finished case's row."""
    run_rows = RunRows()
    for row in rows:
        run_rows.put(row)
    return run_rows


def measure_ingest(
    folder: Path, db: Path, base: RunEnvironment, runs: list[list[ResultRow]]
) -> dict[str, float]:
    """Median session-end `store_run` over `runs` into `db`, each run next to the DuckDB-alone baseline."""
    alone_db, alone_as_store_db = folder / "duckdb-alone.duckdb", folder / "duckdb-alone-as-store.duckdb"
    distinct = {id(rows): rows for rows in runs}  # the runs repeat two lists of rows
    tables = {key: rows_table(rows) for key, rows in distinct.items()}  # the baseline's input, untimed
    for path in (alone_db, alone_as_store_db):
        con = duckdb.connect(str(path))
        con.register("arrow_table", tables[id(runs[0])])
        con.execute("CREATE TABLE t AS SELECT * FROM arrow_table LIMIT 0")
        con.close()
    list_db = folder / "from-list.duckdb"
    open_database(list_db).close()  # schema creation is not part of ingest
    ingest, arriving, from_list, alone, alone_as_store = [], [], [], [], []
    for run, rows in enumerate(runs):  # alternating, so a busy moment of the machine hits all of them
        put_s, run_rows = timed(partial(arrived, rows))  # while the run goes, a row per finished case
        arriving.append(put_s)
        seconds, run_id = timed(partial(stored_run, db, replace(base, run_uid=f"bench-{run}"), run_rows))
        ingest.append(seconds)
        listed = partial(stored_run, list_db, replace(base, run_uid=f"list-{run}"), rows)
        from_list.append(timed(listed)[0])
        alone.append(timed(partial(duckdb_alone, alone_db, tables[id(rows)]))[0])
        as_store = partial(duckdb_alone, alone_as_store_db, tables[id(rows)], as_the_store=True)
        alone_as_store.append(timed(as_store)[0])
        if run == 0:
            report_line(
                f"first run, {len(rows)} rows (run {run_id}), at session end", seconds, alone[0],
                f"{len(rows) / seconds:,.0f} rows/s",
            )  # fmt: skip
    median, median_alone = statistics.median(ingest), statistics.median(alone)
    report_line(
        f"store_run at session end, median of {len(runs)} runs", median, median_alone,
        "(baseline: DuckDB alone)",
    )  # fmt: skip
    per_row_us = statistics.median(arriving) / len(runs[0]) * 1e6
    report_line(
        f"  while the run went: RunRows.put, {per_row_us:.1f} us a row, in all", statistics.median(arriving),
        extra="(spread over the run's cases)",
    )  # fmt: skip
    median_list = statistics.median(from_list)
    report_line("  store_run of a plain list (all converted at the end), median", median_list, median_alone)
    median_as_store = statistics.median(alone_as_store)
    report_line(
        f"  DuckDB alone, {ROW_GROUP_ROWS}-row groups, unordered (as the store)", median_as_store,
        median_alone, "(against DuckDB's defaults)",
    )  # fmt: skip
    # The two phases of storing a list, in a database of their own: the measured one keeps --runs runs.
    phases_db = folder / "phases.duckdb"
    open_database(phases_db).close()
    convert, store = [], []
    for run in range(3):
        seconds, table = timed(partial(rows_table, runs[0]))
        convert.append(seconds)
        store.append(timed(partial(store_table, phases_db, replace(base, run_uid=f"phases-{run}"), table))[0])
    report_line("  of which rows -> Arrow, scrubbed (rows_table), median of 3", statistics.median(convert))
    report_line("  of which DuckDB: open, insert_run, close, median of 3", statistics.median(store))
    return {
        "ingest_100k_rows_s": median,
        "rows_put_while_running_us_per_row": per_row_us,
        "ingest_100k_rows_from_list_s": median_list,
        "duckdb_alone_ingest_100k_rows_s": median_alone,
        "duckdb_alone_as_the_store_ingest_100k_rows_s": median_as_store,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per run (default 100000)")
    parser.add_argument("--runs", type=int, default=10, help="runs stored before reporting (default 10)")
    parser.add_argument("--skip-pytest-benchmark", action="store_true")
    args = parser.parse_args(argv)

    print(f"[{LABEL} data] {args.rows} result rows per run, {args.runs} runs; "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, DuckDB {duckdb.__version__}")  # fmt: skip
    run_a = synthetic_rows(args.rows, seed=1)
    run_b = synthetic_rows(args.rows, seed=1, slowdown=1.3)
    base = RunEnvironment.capture([f"bench_results.py ({LABEL} rows)"], [{"label": "synthetic"}])
    figures: dict[str, Any] = {"rows_per_run": args.rows, "stored_rows": args.rows * args.runs}

    with tempfile.TemporaryDirectory(prefix="hfmodels-bench-") as tmp:
        folder = Path(tmp)
        db = folder / "bench.duckdb"
        open_database(db).close()  # schema creation is not part of ingest
        print(f"[{LABEL} data] ingest{'':<57}{'hfmodels':>11} {'baseline':>11} {'ratio':>7}")
        runs = [run_b if run == args.runs - 1 else run_a for run in range(args.runs)]
        figures.update(measure_ingest(folder, db, base, runs))

        total = args.rows * args.runs
        print(f"[{LABEL} data] reports over {total:,} stored rows ({db.stat().st_size / 2**20:.0f} MiB file)")
        con = open_database(db, read_only=True)
        seconds, cells = timed(lambda: con.execute("SELECT * FROM compatibility_matrix").fetchall())
        con.close()
        figures["compatibility_matrix_s"] = seconds
        report_line(f"compatibility_matrix view over all runs ({len(cells)} cells)", seconds)
        read_s, read_rows = timed(partial(read_run_alone, db, args.runs))
        figures["duckdb_alone_read_run_s"] = read_s
        for fmt, name in (("markdown", "report_markdown_1m_rows_s"), ("html", "report_html_1m_rows_s")):
            report_s, extra = timed_report(folder, db, fmt)
            figures[name] = report_s
            report_line(f"write_report {fmt}, latest run", report_s, read_s, f"{extra} (baseline: DuckDB "
                        f"reading that run's {read_rows:,} rows as Arrow)")  # fmt: skip

        figures["pytest_benchmark_compare_s"] = None
        seconds, comparison = timed(lambda: compare_runs(db, 1, args.runs, 10.0))
        figures["compare_runs_s"] = seconds
        report_line(
            f"compare_runs(1, {args.runs}): {len(comparison.deltas)} cases", seconds,
            extra=f"{len(comparison.regressions)} regressions > 10%",
        )  # fmt: skip
        if not args.skip_pytest_benchmark:
            print(f"[{LABEL} data] pytest-benchmark compare on the same two runs as JSON files")
            a_json, b_json = folder / "0001_a.json", folder / "0002_b.json"
            pytest_benchmark_json(run_a, a_json)
            pytest_benchmark_json(run_b, b_json)
            entries = len(json.loads(a_json.read_text())["benchmarks"])
            executable = Path(sys.executable).with_name("pytest-benchmark")
            command = [str(executable), "compare", "--between", "median", str(a_json), str(b_json)]
            seconds, done = timed(
                partial(subprocess.run, command, cwd=folder, capture_output=True, text=True)
            )
            status = "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[-200:]}"
            figures["pytest_benchmark_compare_s"] = seconds if done.returncode == 0 else None
            report_line(
                f"pytest-benchmark compare --between median ({entries} each)", seconds,
                figures["compare_runs_s"], f"{status} (baseline: hfmodels compare_runs above)",
            )  # fmt: skip
    print(json.dumps({name: round(value, 4) if isinstance(value, float) else value
                      for name, value in figures.items()}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
