"""`pytest --hf-set small --hf-verify-only` with -n 0 against -n 2, in the same run.

The suite runs as a user runs it: results stored in a DuckDB file (a fresh one per run).
Also times what every worker pays on its own, which decides whether workers can win on a
machine: importing torch and transformers' pipelines, and exiting afterwards (with the heap
frozen as the plugin does at exit, against a plain exit). -n 0 already runs every case's
compute on all cores through the runtime's own threads, so a worker wins only what it does
not pay twice. And -n 2 with each runtime on all cores (--hf-threads = CPUs), which is what
xdist without the plugin's per-worker thread budget would do.

    .venv/bin/python benchmarks/bench_xdist.py [--repeats 3]
"""

from __future__ import annotations

import argparse
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
IMPORT = "import time, torch, transformers; transformers.pipeline; print(time.time(), flush=True)"
EXIT_FROZEN = IMPORT + "; import gc; gc.freeze()"


def run(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (children's user + system) and stdout of one fresh interpreter."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {done.returncode}: {done.stdout.decode()[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout.decode()


def run_suite(extra: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        wall, cpu, _ = run([*SUITE, *extra, f"--hf-db={Path(folder) / 'results.duckdb'}"])
    return wall, cpu


def exit_seconds(code: str) -> float:
    """From the script's last line to the process's end: the interpreter's exit."""
    _, _, out = run(["-c", code])
    return time.time() - float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    variants = {
        "-n 0": ["-n", "0"],
        "-n 2": ["-n", "2"],
        f"-n 2 --hf-threads {cpus}": ["-n", "2", f"--hf-threads={cpus}"],
    }
    run_suite(["-n", "0"])  # warm: tiny models built, files in the page cache
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):  # interleaved, so drift in the machine's load hits every variant
        for name, extra in variants.items():
            results[name].append(run_suite(extra))
    imports = [run(["-c", IMPORT])[:2] for _ in range(repeats)]
    exits = {"plain": [exit_seconds(IMPORT) for _ in range(repeats)]}
    exits["heap frozen"] = [exit_seconds(EXIT_FROZEN) for _ in range(repeats)]

    print(f"small set, --hf-verify-only, results stored; {cpus} CPUs, median of {repeats}")
    print(f"{'run':<28}{'wall s':>9}{'cpu s':>9}{'vs -n 0':>10}")
    base = statistics.median(w for w, _ in results["-n 0"])
    for name, samples in results.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        print(f"{name:<28}{wall:>9.2f}{cpu:>9.2f}{wall / base:>9.2f}x")
    print("paid by every process that runs cases:")
    wall = statistics.median(w for w, _ in imports)
    print(f"{'  import torch+pipelines':<28}{wall:>9.2f}{statistics.median(c for _, c in imports):>9.2f}")
    for name, samples in exits.items():
        print(f"{'  exit, ' + name:<28}{statistics.median(samples):>9.2f}")


if __name__ == "__main__":
    main()
