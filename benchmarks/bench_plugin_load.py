"""What the installed plugin costs runs that do not ask for it, against the same runs without it.

Each pair runs the same command with the plugin and with `-p no:hfmodels`, interleaved (so drift
in the machine's load hits both sides), and reports medians:

- importing the plugin module, against importing pytest alone;
- `pytest --help`;
- an unrelated project's one-test file, with and without `-n 2` (pytest-xdist): no --hf-* option,
  no hf_* ini key, no hf_* fixture, which the plugin must leave alone.

Wall time is what a user waits; CPU time (the process and its children: user + system) is shown
beside it because on a shared machine it moves much less with the others' load, and the ratio of
the fastest CPU times last, as the reading least disturbed by that load. Ends with one JSON line
of the figures (medians in ms; ratios plugin / without, of wall and of CPU time). Where valgrind
is installed, the instructions each side executes are counted too, once: a cost this machine's
load cannot blur (it does not weigh what the instructions wait for, the disk or the caches).

The plugin is measured as a user installs it: the wheel built from this checkout, installed
with `pip install --no-deps --target` into a temporary folder put first on PYTHONPATH (pip
compiles its modules to bytecode there; pytest marks them for assertion rewriting, as it does any
plugin's). --editable measures this checkout as the development venv imports it instead: no
bytecode where PYTHONDONTWRITEBYTECODE is set, and nothing rewritten (an editable install lists no
package for pytest to mark).

With PYTHONDONTWRITEBYTECODE set (as in this VM and some CI images) Python and pytest write no
cache, so what is not already compiled is compiled (and rewritten) in every run. --bytecode-cache
runs every side with a cache in a temporary folder (PYTHONPYCACHEPREFIX) instead.

    .venv/bin/python benchmarks/bench_plugin_load.py [--repeats 11] [--editable] [--bytecode-cache]
        [--only suite,control]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_PLUGIN = ["-p", "no:hfmodels"]
REPO = Path(__file__).resolve().parents[1]


def install_wheel(folder: Path) -> Path:
    """The plugin as pip installs its wheel, into `folder`/site (put first on PYTHONPATH by the caller)."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels, site = folder / "wheels", folder / "site"
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)]
    built = subprocess.run(build, capture_output=True, text=True, check=False)
    if built.returncode != 0:  # e.g. no setuptools >= 68 beside this interpreter (--no-build-isolation)
        raise SystemExit(f"pip wheel {REPO} failed: {built.stderr.strip()[-600:]}")
    (wheel,) = wheels.glob("pytest_hfmodels-*.whl")
    install = [*pip, "install", "--no-deps", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    return site


def instructions(args: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Instructions a fresh interpreter running `args` executes, with every process it starts, as
    valgrind counts them (cachegrind without its cache model): the same count for the same work
    whatever else the machine runs, where times on a shared 2-core VM move by +-8% (the A/A rows)."""
    valgrind = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--trace-children=yes"]
    command = [*valgrind, "--cachegrind-out-file=/dev/null", sys.executable, *args]
    # One hash seed on both sides: sets and dicts of strings then iterate, and cost, the same.
    seeded = {**env, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=cwd, env=seeded, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"valgrind {args}: exit {done.returncode}: {done.stderr[-800:]}")
    return sum(int(count.replace(",", "")) for count in re.findall(r"I\s+refs:\s+([\d,]+)", done.stderr))


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
    parser.add_argument("--bytecode-cache", action="store_true", help="Python, pytest cache bytecode")
    parser.add_argument("--editable", action="store_true", help="this checkout, not the wheel")
    parser.add_argument("--no-valgrind", action="store_true", help="skip the instruction counts")
    parser.add_argument("--only", help="comma-separated figure names: import,help,suite,...")
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
        installed = "editable checkout" if options.editable else "installed wheel"
        if not options.editable:
            site = install_wheel(Path(tmp))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
            where = [sys.executable, "-c", "import pytest_hfmodels.plugin as p; print(p.__file__)"]
            loaded = subprocess.run(where, cwd=tmp, env=env, capture_output=True, text=True, check=True)
            if not Path(loaded.stdout.strip()).is_relative_to(site):  # the editable checkout came first
                raise SystemExit(f"the plugin loads from {loaded.stdout.strip()}, not from {site}")
        (project / "pytest.ini").write_text("[pytest]\n")
        (project / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        suite = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_one.py"]
        suite_n2 = [*suite, "-n", "2"]
        pairs = {  # figure name: (label, without the plugin, with it)
            "import": ("import", ["-c", "import pytest"], ["-c", "import pytest, pytest_hfmodels.plugin"]),
            "help": ("pytest --help", ["-m", "pytest", "--help", *NO_PLUGIN], ["-m", "pytest", "--help"]),
            "suite": ("one-test suite", [*suite, *NO_PLUGIN], suite),
            "suite_n2": ("one-test suite -n 2", [*suite_n2, *NO_PLUGIN], suite_n2),
            # The same command on both sides: how far apart two medians of one thing fall on this
            # machine, the resolution the ratios above are read with.
            "control": ("A/A: without, twice", [*suite, *NO_PLUGIN], [*suite, *NO_PLUGIN]),
            "control_n2": ("A/A: -n 2 without", [*suite_n2, *NO_PLUGIN], [*suite_n2, *NO_PLUGIN]),
        }
        if options.only:
            chosen = options.only.split(",")
            if unknown := sorted(set(chosen) - set(pairs)):
                raise SystemExit(f"--only: no figure named {', '.join(unknown)}; known: {', '.join(pairs)}")
            pairs = {name: pair for name, pair in pairs.items() if name in chosen}
        for _, without, with_plugin in pairs.values():  # warm the page cache and the bytecode caches
            once(without, project, env), once(with_plugin, project, env)
        samples: dict[str, tuple[list[tuple[float, float]], ...]] = {name: ([], []) for name in pairs}
        for repeat in range(repeats):
            for name, (_, without, with_plugin) in pairs.items():
                # Each side first every other time: a run slowed by the one before it (xdist's
                # workers still exiting, caches just filled) costs both sides alike.
                for side in (0, 1) if repeat % 2 == 0 else (1, 0):
                    samples[name][side].append(once((without, with_plugin)[side], project, env))
        counted: dict[str, tuple[int, int]] = {}
        if shutil.which("valgrind") and not options.no_valgrind:
            for name in [name for name in ("help", "suite", "suite_n2") if name in pairs]:
                _, without, with_plugin = pairs[name]
                counted[name] = instructions(without, project, env), instructions(with_plugin, project, env)

    figures: dict[str, float | bool] = {"bytecode_cache": bytecode == "bytecode cached"}
    figures["editable"] = options.editable
    load = os.getloadavg()[0]
    print(f"median of {repeats}, interleaved, ms; {installed}; {bytecode}; load {load:.1f} at the end")
    wall = f"{'wall: without':>14}{'with':>7}{'ratio':>8}"
    cpu = f"{'cpu: without':>15}{'with':>7}{'ratio':>8}"
    print(f"{'':<22}{wall}{cpu}{'cpu min ratio':>15}")
    for name, (without, with_plugin) in samples.items():
        line = f"{pairs[name][0]:<22}"
        for kind, column in (("", 0), ("cpu_", 1)):
            base = statistics.median(sample[column] for sample in without)
            plugin = statistics.median(sample[column] for sample in with_plugin)
            figures[f"{name}_{kind}without_ms"], figures[f"{name}_{kind}with_ms"] = round(base), round(plugin)
            figures[f"{name}_{kind}ratio"] = round(plugin / base, 3)
            line += f"{base:>{14 if column == 0 else 15}.0f}{plugin:>7.0f}{plugin / base:>7.2f}x"
        # The fastest run of each side: what the command costs with the least interference from
        # the machine's other load, which only ever adds time (timeit's reading of repeats).
        fastest = min(sample[1] for sample in with_plugin) / min(sample[1] for sample in without)
        figures[f"{name}_cpu_min_ratio"] = round(fastest, 3)
        print(f"{line}{fastest:>14.2f}x")
    if counted:
        print("instructions executed, every process (valgrind; the same for the same work)")
        print(f"{'':<22}{'without':>14}{'with':>14}{'ratio':>8}")
        for name, (base_count, plugin_count) in counted.items():
            ratio = plugin_count / base_count
            figures[f"{name}_instructions_ratio"] = round(ratio, 3)
            counts = f"{base_count / 1e6:>13,.0f}M{plugin_count / 1e6:>13,.0f}M"
            print(f"{pairs[name][0]:<22}{counts}{ratio:>7.3f}x")
    print("import: `import pytest` against `import pytest, pytest_hfmodels.plugin`; A/A: the one-test")
    print("suite without the plugin on both sides (and with -n 2): its ratio is this machine's noise")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
