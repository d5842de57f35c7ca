"""Plugin import and `pytest --help` with the plugin, against pytest alone, in the same run."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

REPEATS = 7
EMPTY = tempfile.mkdtemp()


def wall(args: list[str]) -> float:
    """Median wall time of a fresh interpreter running `args`, in ms."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, *args], capture_output=True, check=False)
        if done.returncode not in (0, 5):  # 5: pytest collected no test, which the baseline expects
            raise SystemExit(f"{args}: exit {done.returncode}: {done.stderr.decode()[-500:]}")
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    rows = [
        (
            "import pytest",
            wall(["-c", "import pytest"]),
            wall(["-c", "import pytest, pytest_hfmodels.plugin"]),
        ),
        (
            "pytest --help",
            wall(["-m", "pytest", "--help", "-p", "no:hfmodels"]),
            wall(["-m", "pytest", "--help"]),
        ),
        (
            "pytest --hf-list-models",
            wall(["-m", "pytest", "--collect-only", "-q", "-p", "no:hfmodels", EMPTY]),
            wall(["-m", "pytest", "--hf-list-models"]),
        ),
    ]
    print(f"{'what (median of ' + str(REPEATS) + ', ms)':<32}{'baseline':>10}{'with plugin':>13}{'extra':>9}")
    for name, base, plugin in rows:
        print(f"{name:<32}{base:>10.0f}{plugin:>13.0f}{plugin - base:>+9.0f}")
    print("baseline for --hf-list-models: `pytest --collect-only` of an empty folder, without the plugin")


if __name__ == "__main__":
    main()
