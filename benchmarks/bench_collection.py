"""Collecting 10,000 generated cases against a plain test parametrized 10,000 times.

Both are `pytest --collect-only` in a fresh interpreter, run alternately (so drift in the machine's
load hits both), medians reported. The generated side pays for everything the plugin does before
the first case runs: options, the registries (the built-in ones and one of 1,250 models), the
hardware detection, case expansion, parametrization with marks, and items. Ends with one JSON line.

    .venv/bin/python benchmarks/bench_collection.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# 1250 x 2 modes x 4 batch sizes x one text length = 10,000
ENTRIES, MODES, BATCHES, LENGTHS = 1250, ("pipeline", "from_pretrained"), "1,2,4,8", "128"


def collect(args: list[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds of one `pytest --collect-only`, and its last line (the count)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{args}: exit {done.returncode}: {(done.stdout + done.stderr)[-1500:]}")
    return elapsed, done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registries = root / "regs"
        registries.mkdir()
        entry = "  m{0:05d}:\n    id: org/model-{0}\n    source: hub\n    sets: [small]\n"
        models = "".join(entry.format(i) for i in range(ENTRIES))
        (registries / "many.yaml").write_text(
            f"family: many\ntask: fill-mask\nmodality: text\narchitecture: BertForMaskedLM\nmodels:\n{models}"
        )
        (root / "test_plain.py").write_text(
            "import pytest\n\n@pytest.mark.parametrize('i', range(10_000))\ndef test_plain(i):\n    pass\n"
        )
        variants = {
            "plain": ["test_plain.py", "-p", "no:hfmodels"],
            "generated": [
                *("--hf-registry", str(registries), "--hf-family", "many", "--hf-mode", ",".join(MODES)),
                *("--hf-batch-sizes", BATCHES, "--hf-seq-lengths", LENGTHS, "--cpu-only"),
            ],
        }
        for args in variants.values():  # warm the page cache
            collect(args, root)
        times: dict[str, list[float]] = {name: [] for name in variants}
        said: dict[str, str] = {}
        for _ in range(repeats):
            for name, args in variants.items():
                elapsed, said[name] = collect(args, root)
                times[name].append(elapsed)

    plain, generated = statistics.median(times["plain"]), statistics.median(times["generated"])
    print(f"collection, median of {repeats} interleaved; load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'':<34}{'seconds':>9}  pytest says")
    print(f"{'plain test, parametrize x10,000':<34}{plain:>9.2f}  {said['plain']}")
    print(f"{'generated suite, 10,000 cases':<34}{generated:>9.2f}  {said['generated']}")
    print(f"ratio generated / plain: {generated / plain:.2f}")
    figures = {"plain_s": round(plain, 3), "generated_s": round(generated, 3)}
    figures["ratio"] = round(generated / plain, 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
