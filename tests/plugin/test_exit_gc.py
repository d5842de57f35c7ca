"""The heap is frozen at exit in a process that loaded torch, and left alone where DuckDB is loaded."""

from __future__ import annotations

import subprocess
import sys

# An atexit callback registered first runs last: after the plugin's, it sees what that one did.
SCRIPT = """
import atexit, gc, sys
atexit.register(lambda: print("frozen objects:", gc.get_freeze_count(), flush=True))
from pytest_hfmodels.plugin import exit_gc
exit_gc.freeze_heap_at_exit()
exit_gc.freeze_heap_at_exit()  # registered once however often it is asked
for name in sys.argv[1:]:
    __import__(name)
"""


def _frozen_at_exit(*modules: str) -> tuple[int, str]:
    command = [sys.executable, "-c", SCRIPT, *modules]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(done.stdout.split("frozen objects:")[1]), done.stderr


def test_a_process_holding_torch_exits_with_its_heap_frozen() -> None:
    frozen, stderr = _frozen_at_exit("torch")
    assert frozen > 100_000, stderr  # torch alone leaves hundreds of thousands of tracked objects


def test_a_process_without_torch_exits_normally() -> None:
    frozen, _ = _frozen_at_exit("json")
    assert frozen == 0


def test_a_process_holding_duckdb_exits_normally_and_reports_no_leak() -> None:
    frozen, stderr = _frozen_at_exit("torch", "duckdb")
    assert frozen == 0
    assert "leaked" not in stderr
