"""`pytest --hf-verify-only` on the small set with -n 0 against -n 2, in the same run.

Also times what every worker pays before its first case (a fresh interpreter importing torch
and transformers' pipelines), which decides whether workers can win on a machine: each worker
pays it again, while -n 0 already runs every case's compute on all cores through the
runtime's own threads. And -n 2 with each runtime on all cores (--hf-threads = CPUs), which is
what xdist without the plugin's per-worker thread budget would do.

    .venv/bin/python benchmarks/bench_xdist.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

SUITE = ["-m", "pytest", "--hf-set", "small", "--hf-offline", "--hf-verify-only", "--hf-no-db", "-q"]
SUITE += ["-p", "no:cacheprovider"]


def run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (children's user + system) of one fresh interpreter."""
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
    return wall, cpu


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
    run([*SUITE, "-n", "0"])  # warm: tiny models built, files in the page cache
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):  # interleaved, so drift in the machine's load hits every variant
        for name, extra in variants.items():
            results[name].append(run([*SUITE, *extra]))
    imports = [run(["-c", "import torch, transformers; transformers.pipeline"]) for _ in range(repeats)]

    print(f"small set, --hf-verify-only, {cpus} CPUs, median of {repeats}")
    print(f"{'run':<28}{'wall s':>9}{'cpu s':>9}{'vs -n 0':>10}")
    base = statistics.median(w for w, _ in results["-n 0"])
    for name, samples in results.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        print(f"{name:<28}{wall:>9.2f}{cpu:>9.2f}{wall / base:>9.2f}x")
    wall = statistics.median(w for w, _ in imports)
    print(
        f"{'import torch+pipelines':<28}{wall:>9.2f}{statistics.median(c for _, c in imports):>9.2f}"
        "   (paid once per process)"
    )


if __name__ == "__main__":
    main()
