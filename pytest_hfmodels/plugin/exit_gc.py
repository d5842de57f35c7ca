"""Skip the interpreter's last garbage collections over torch's and transformers' objects.

A process that imported torch and transformers' pipelines spends 1.4-1.8 s of its exit
collecting their millions of objects (0.23-0.35 s with the heap frozen: benchmarks/bench_xdist.py
on a 2-CPU machine), and every xdist worker pays it again while the controller waits.
`gc.freeze()` moves the live objects to the permanent generation, which those collections skip;
the process's memory goes back to the OS all the same. atexit callbacks (coverage data,
temporary folders, weakref.finalize) still run.
"""

from __future__ import annotations

import atexit
import gc
import sys

# nanobind extensions print a "leaked instances" report at exit for every object of theirs left
# uncollected; DuckDB's type objects are among those, so a process that loaded it exits normally.
_REPORTS_UNCOLLECTED = ("duckdb",)
_registered = False


def freeze_heap_at_exit() -> None:
    """Register once per process; the decision is taken at exit, when the loaded modules are known."""
    global _registered
    if not _registered:
        atexit.register(_freeze_if_heavy)
        _registered = True


def _freeze_if_heavy() -> None:
    if "torch" in sys.modules and not any(name in sys.modules for name in _REPORTS_UNCOLLECTED):
        gc.freeze()
