"""How fast the results database stores and reports, next to pytest-benchmark's JSON compare.

    .venv/bin/python benchmarks/bench_results.py [--rows 100000] [--runs 10]

The rows are SYNTHETIC (a seeded generator, labelled so in every line printed and in the stored
command line): this measures the database and report code, not models. Everything is written
under a temporary directory, never to the default database.

Measured: ingesting one run of --rows rows (`write_run`, one transaction); with --runs runs
stored (1M rows by default), the compatibility_matrix view over all of them, `compare_runs`
of two runs and writing a Markdown report (with plots) of one; and, on the same two runs
exported as pytest-benchmark JSON files, `pytest-benchmark compare --between median A B`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from pytest_hfmodels.db.environment import RunEnvironment
from pytest_hfmodels.db.store import open_database, write_run
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
        family="synthetic", task="feature-extraction", source="synthetic", model_type="bert",
        architecture="BertModel", mode=mode, hardware=hardware, device_name=f"synthetic {hardware}",
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
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def report_line(what: str, seconds: float, extra: str = "") -> None:
    print(f"  {what:<68} {seconds:9.3f} s  {extra}".rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per run (default 100000)")
    parser.add_argument("--runs", type=int, default=10, help="runs stored before reporting (default 10)")
    parser.add_argument("--skip-pytest-benchmark", action="store_true")
    args = parser.parse_args(argv)

    print(f"[{LABEL} data] {args.rows} result rows per run, {args.runs} runs; "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")  # fmt: skip
    run_a = synthetic_rows(args.rows, seed=1)
    run_b = synthetic_rows(args.rows, seed=1, slowdown=1.3)
    base = RunEnvironment.capture([f"bench_results.py ({LABEL} rows)"], [{"label": "synthetic"}])

    with tempfile.TemporaryDirectory(prefix="hfmodels-bench-") as folder:
        db = Path(folder) / "bench.duckdb"
        open_database(db).close()  # schema creation is not part of ingest
        print(f"[{LABEL} data] ingest (write_run: Arrow table + one DuckDB transaction)")
        ingest_times = []
        for run in range(args.runs):
            rows = run_b if run == args.runs - 1 else run_a
            environment = replace(base, run_uid=f"bench-{run}")
            seconds, run_id = timed(partial(write_run, db, environment, rows))
            ingest_times.append(seconds)
            if run == 0:
                report_line(
                    f"first run, {len(rows)} rows (run {run_id})",
                    seconds,
                    f"{len(rows) / seconds:,.0f} rows/s",
                )
        report_line(f"median of {args.runs} runs of {args.rows} rows", float(np.median(ingest_times)))
        total = args.rows * args.runs
        print(f"[{LABEL} data] reports over {total:,} stored rows ({db.stat().st_size / 2**20:.0f} MiB file)")
        con = open_database(db, read_only=True)
        seconds, cells = timed(lambda: con.execute("SELECT * FROM compatibility_matrix").fetchall())
        con.close()
        report_line(f"compatibility_matrix view over all runs ({len(cells)} cells)", seconds)
        seconds, comparison = timed(lambda: compare_runs(db, 1, args.runs, 10.0))
        report_line(
            f"compare_runs(1, {args.runs}): {len(comparison.deltas)} cases", seconds,
            f"{len(comparison.regressions)} regressions > 10%",
        )  # fmt: skip
        seconds, written = timed(lambda: write_report(db, Path(folder) / "report", fmt="markdown"))
        report_line(f"write_report markdown + 2 PNG plots, latest run ({len(written)} files)", seconds)
        seconds, _ = timed(lambda: write_report(db, Path(folder) / "report-html", fmt="html"))
        report_line("write_report html (self-contained), latest run", seconds)

        if not args.skip_pytest_benchmark:
            print(f"[{LABEL} data] pytest-benchmark compare on the same two runs as JSON files")
            a_json, b_json = Path(folder) / "0001_a.json", Path(folder) / "0002_b.json"
            pytest_benchmark_json(run_a, a_json)
            pytest_benchmark_json(run_b, b_json)
            entries = len(json.loads(a_json.read_text())["benchmarks"])
            executable = Path(sys.executable).with_name("pytest-benchmark")
            command = [str(executable), "compare", "--between", "median", str(a_json), str(b_json)]
            seconds, done = timed(
                partial(subprocess.run, command, cwd=folder, capture_output=True, text=True)
            )
            status = "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[-200:]}"
            report_line(
                f"pytest-benchmark compare --between median ({entries} benchmarks each)", seconds, status
            )
            seconds, comparison = timed(lambda: compare_runs(db, 1, args.runs, 10.0))
            report_line("hfmodels compare_runs on the same two runs (again)", seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
