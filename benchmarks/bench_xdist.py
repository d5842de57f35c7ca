"""`pytest --hf-set small --hf-verify-only` with -n 0 against -n 2, in the same run.

The suite runs as a user runs it: results stored in a DuckDB file (a fresh one per run).
Also times what every worker pays on its own, which decides whether workers can win on a
machine: importing torch and transformers' pipelines, and exiting afterwards (with the heap
frozen as the plugin does at exit, against a plain exit). -n 0 already runs every case's
compute on all cores through the runtime's own threads, so a worker wins only what it does
not pay twice. With --oversubscribed, also -n 2 with each runtime on all cores (--hf-threads =
CPUs), which is what xdist without the plugin's per-worker thread budget would do.

Where each case ran is checked too: every -n 2 run's result rows (dumped by a small plugin as the
controller receives them) must show each model's cases on one worker. Ends with one JSON line.

    .venv/bin/python benchmarks/bench_xdist.py [--repeats 3] [--oversubscribed]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = ["-m", "pytest", "--hf-set", "small", "--hf-offline", "--hf-verify-only", "-q"]
SUITE += ["-p", "no:cacheprovider"]
# Appends every result row the controller receives to the file named by HFMODELS_BENCH_ROWS.
ROW_DUMP = """
import json, os
from pytest_hfmodels.results import USER_PROPERTY

def pytest_runtest_logreport(report):
    for name, value in report.user_properties:
        if name == USER_PROPERTY and "PYTEST_XDIST_WORKER" not in os.environ:
            with open(os.environ["HFMODELS_BENCH_ROWS"], "a") as out:
                out.write(json.dumps({"model": value["model_key"], "worker": value["worker"]}) + "\\n")
"""
IMPORT = "import time, torch, transformers; transformers.pipeline; print(time.time(), flush=True)"
EXIT_FROZEN = IMPORT + "; import gc; gc.freeze()"


def run(
    args: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)
) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (children's user + system) and stdout of one fresh interpreter;
    an exit status outside `ok` ends the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    done = subprocess.run([sys.executable, *args], capture_output=True, check=False, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(args)}: exit {done.returncode}: {done.stdout.decode()[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout.decode()


def run_suite(extra: list[str]) -> tuple[float, float, dict[str, set[str]]]:
    """Wall and CPU seconds of one run of the suite, and the workers each model's cases ran on."""
    with tempfile.TemporaryDirectory() as folder:
        rows = Path(folder) / "rows.jsonl"
        (Path(folder) / "hfmodels_bench_rows.py").write_text(ROW_DUMP)
        path = os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))
        env = {"HFMODELS_BENCH_ROWS": str(rows), "PYTHONPATH": path}
        args = [*SUITE, *extra, f"--hf-db={Path(folder) / 'results.duckdb'}", "-p", "hfmodels_bench_rows"]
        wall, cpu, out = run(args, env, ok=(0, 1))  # 1: some case failed, timed all the same
        if "failed" in out.splitlines()[-1]:
            print(f"note: {' '.join(extra)}: {out.splitlines()[-1]}", flush=True)
        workers: dict[str, set[str]] = {}
        for line in rows.read_text().splitlines() if rows.exists() else []:
            row = json.loads(line)
            workers.setdefault(row["model"], set()).add(row["worker"])
    return wall, cpu, workers


def exit_seconds(code: str) -> float:
    """From the script's last line to the process's end: the interpreter's exit."""
    _, _, out = run(["-c", code])
    return time.time() - float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--oversubscribed", action="store_true", help="also -n 2 with each runtime on every CPU"
    )
    options = parser.parse_args()
    repeats = options.repeats
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    variants = {"-n 0": ["-n", "0"], "-n 2": ["-n", "2"]}
    if options.oversubscribed:
        variants[f"-n 2 --hf-threads {cpus}"] = ["-n", "2", f"--hf-threads={cpus}"]
    run_suite(["-n", "0"])  # warm: tiny models built, files in the page cache
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    split: dict[str, set[str]] = {}  #: model -> workers, for every model some -n 2 run split
    models: set[str] = set()
    for _ in range(repeats):  # interleaved, so drift in the machine's load hits every variant
        for name, extra in variants.items():
            wall, cpu, workers = run_suite(extra)
            results[name].append((wall, cpu))
            if "-n 2" in name:
                models |= set(workers)
                split.update({model: on for model, on in workers.items() if len(on) > 1})
    imports = [run(["-c", IMPORT])[:2] for _ in range(repeats)]
    exits = {"plain": [exit_seconds(IMPORT) for _ in range(repeats)]}
    exits["heap frozen"] = [exit_seconds(EXIT_FROZEN) for _ in range(repeats)]

    print(f"small set, --hf-verify-only, results stored; {cpus} CPUs, median of {repeats}")
    print(f"{'run':<28}{'wall s':>9}{'cpu s':>9}{'vs -n 0':>10}")
    base = statistics.median(w for w, _ in results["-n 0"])
    figures: dict[str, object] = {}
    for name, samples in results.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        print(f"{name:<28}{wall:>9.2f}{cpu:>9.2f}{wall / base:>9.2f}x")
        slug = name.replace("-n ", "n").replace(" --hf-threads ", "_threads")
        figures[f"{slug}_wall_s"], figures[f"{slug}_cpu_s"] = round(wall, 2), round(cpu, 2)
    figures["n2_vs_n0"] = round(statistics.median(w for w, _ in results["-n 2"]) / base, 3)
    print(f"one model, one worker (every -n 2 run): {len(models) - len(split)} of {len(models)} models")
    for model, on in sorted(split.items()):
        print(f"  split: {model} ran on {', '.join(sorted(on))}")
    figures["models"], figures["models_split"] = len(models), sorted(split)
    figures["one_worker_per_model"] = bool(models) and not split
    print("paid by every process that runs cases:")
    wall = statistics.median(w for w, _ in imports)
    print(f"{'  import torch+pipelines':<28}{wall:>9.2f}{statistics.median(c for _, c in imports):>9.2f}")
    for name, samples in exits.items():
        print(f"{'  exit, ' + name:<28}{statistics.median(samples):>9.2f}")
    figures["import_torch_pipelines_s"] = round(wall, 2)
    figures["exit_plain_s"] = round(statistics.median(exits["plain"]), 2)
    figures["exit_heap_frozen_s"] = round(statistics.median(exits["heap frozen"]), 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
