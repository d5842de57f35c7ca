"""What the installed plugin costs runs that do not ask for it, against the same runs without it.

Each pair runs the same command with the plugin and with `-p no:hfmodels`, interleaved (so drift
in the machine's load hits both sides), and reports medians:

- importing the plugin module, against importing pytest alone;
- `pytest --help`;
- an unrelated project's one-test file, with and without `-n 2` (pytest-xdist): no --hf-* option,
  no hf_* ini key, no hf_* fixture, which the plugin must leave alone.

Wall time is what a user waits; CPU time (the process and its children: user + system) is shown
beside it because on a shared machine it moves much less with the others' load. Ends with one
JSON line of the figures (medians in ms; ratios plugin / without, of wall and of CPU time).

Python compiles each module it imports unless a bytecode cache holds it; with
PYTHONDONTWRITEBYTECODE set (as in some CI images) every run compiles the plugin's modules again.
--bytecode-cache runs every side with a cache in a temporary folder (PYTHONPYCACHEPREFIX), as a
normal installation has.

    .venv/bin/python benchmarks/bench_plugin_load.py [--repeats 11] [--bytecode-cache]
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

NO_PLUGIN = ["-p", "no:hfmodels"]


def once(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall ms and CPU ms (with its children, xdist's workers) of a fresh interpreter running `args`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, check=False)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode()[-800:]
        raise SystemExit(f"{args}: exit {done.returncode}: {output}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--bytecode-cache", action="store_true", help="compiled modules cached, as installed")
    options = parser.parse_args()
    repeats = options.repeats
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"  # an unrelated project: its own rootdir, one plain test
        project.mkdir()
        env = dict(os.environ)
        if options.bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        bytecode = "no bytecode cache" if env.get("PYTHONDONTWRITEBYTECODE") else "bytecode cached"
        (project / "pytest.ini").write_text("[pytest]\n")
        (project / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        suite = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_one.py"]
        pairs = {  # figure name: (label, without the plugin, with it)
            "import": ("import", ["-c", "import pytest"], ["-c", "import pytest, pytest_hfmodels.plugin"]),
            "help": ("pytest --help", ["-m", "pytest", "--help", *NO_PLUGIN], ["-m", "pytest", "--help"]),
            "suite": ("one-test suite", [*suite, *NO_PLUGIN], suite),
            "suite_n2": ("one-test suite -n 2", [*suite, "-n", "2", *NO_PLUGIN], [*suite, "-n", "2"]),
            # The same command on both sides: how far apart two medians of one thing fall on this
            # machine, the resolution the ratios above are read with.
            "control": ("A/A: without, twice", [*suite, *NO_PLUGIN], [*suite, *NO_PLUGIN]),
        }
        for _, without, with_plugin in pairs.values():  # warm the page cache and the bytecode caches
            once(without, project, env), once(with_plugin, project, env)
        samples: dict[str, tuple[list[tuple[float, float]], ...]] = {name: ([], []) for name in pairs}
        for _ in range(repeats):
            for name, (_, without, with_plugin) in pairs.items():
                samples[name][0].append(once(without, project, env))
                samples[name][1].append(once(with_plugin, project, env))

    figures: dict[str, float | bool] = {"bytecode_cache": bytecode == "bytecode cached"}
    load = os.getloadavg()[0]
    print(f"median of {repeats}, interleaved, ms; {bytecode}; load average {load:.1f} at the end")
    print(f"{'':<22}{'wall: without':>14}{'with':>7}{'ratio':>8}{'cpu: without':>15}{'with':>7}{'ratio':>8}")
    for name, (without, with_plugin) in samples.items():
        line = f"{pairs[name][0]:<22}"
        for kind, column in (("", 0), ("cpu_", 1)):
            base = statistics.median(sample[column] for sample in without)
            plugin = statistics.median(sample[column] for sample in with_plugin)
            figures[f"{name}_{kind}without_ms"], figures[f"{name}_{kind}with_ms"] = round(base), round(plugin)
            figures[f"{name}_{kind}ratio"] = round(plugin / base, 3)
            line += f"{base:>{14 if column == 0 else 15}.0f}{plugin:>7.0f}{plugin / base:>7.2f}x"
        print(line)
    print("import: `import pytest` against `import pytest, pytest_hfmodels.plugin`; A/A: the one-test")
    print("suite without the plugin on both sides: its ratio is this machine's noise, not a cost")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
