"""How many CPU threads a runtime may use in this process.

Alone, a runtime takes every core (its own default). Under `pytest -n N` there are N processes
on the same cores: each runtime taking all of them oversubscribes the machine (OpenMP threads
spin while they wait for each other) and makes every case several times slower than it is, so
each worker gets its share, `cpus // N`, unless the user asked for a number (`--hf-threads`).
"""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, so a container's limit counts)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_budget(requested: int | None, workers: int, cpus: int) -> int | None:
    """Threads per runtime: what was asked; else a fair share under xdist; else None (its default)."""
    if requested is not None:
        return requested
    if workers > 1:
        return max(1, cpus // workers)
    return None


def limit_torch_threads(threads: int | None) -> int:
    """Apply the budget to torch (process-wide) and return the intra-op threads torch will use."""
    import torch

    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return int(torch.get_num_threads())
