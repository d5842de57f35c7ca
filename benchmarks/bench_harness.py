"""Per-round overhead of the measurement harness against a bare loop over the same callable."""

from __future__ import annotations

import statistics
import time

import numpy as np

from pytest_hfmodels.cases.settings import MeasureConfig
from pytest_hfmodels.execution.measure import time_rounds

ROUNDS = 20_000
matrix = np.random.default_rng(0).standard_normal((32, 32)).astype(np.float32)


def work() -> None:
    matrix @ matrix  # a few microseconds: small enough that overhead would show


def bare_loop() -> float:
    """Mean seconds per call of a loop with one perf_counter pair per call, no bookkeeping."""
    total = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        work()
        total += time.perf_counter() - start
    return total / ROUNDS


def harness() -> tuple[float, float]:
    """(mean per round as the harness reports it, wall seconds per round including its bookkeeping)."""
    config = MeasureConfig(warmup=0, min_rounds=ROUNDS, min_time_s=0.0, max_rounds=ROUNDS)
    start = time.perf_counter()
    timing = time_rounds(work, config)
    wall = (time.perf_counter() - start) / ROUNDS
    return timing.mean_ms / 1000.0, wall


def main() -> None:
    for _ in range(3):  # warm caches and the allocator
        bare_loop()
    bare = statistics.median(bare_loop() for _ in range(5))
    reported, walls = zip(*(harness() for _ in range(5)), strict=True)
    print(f"{'per call, median of 5 x ' + str(ROUNDS):<36}{'microseconds':>14}")
    print(f"{'bare loop (perf_counter pair)':<36}{bare * 1e6:>14.2f}")
    print(f"{'harness: reported mean latency':<36}{statistics.median(reported) * 1e6:>14.2f}")
    print(f"{'harness: wall time per round':<36}{statistics.median(walls) * 1e6:>14.2f}")
    print(f"overhead per round (wall - bare): {(statistics.median(walls) - bare) * 1e6:.2f} us")


if __name__ == "__main__":
    main()
