"""Timing and memory of a callable: warm-up, timed rounds, percentiles, peak memory.

Rounds continue until both a minimum count and a minimum duration are reached. On CUDA every
round is timed with CUDA events (and on MPS the device is synchronised), because a wall-clock
timer around an asynchronous launch measures the launch, not the work.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_hfmodels.cases.settings import MeasureConfig


@dataclass(frozen=True)
class Timing:
    """Per-round latencies (ms) and what produced them."""

    rounds_ms: tuple[float, ...]
    warmup: int
    timer: str  #: perf_counter | cuda_events | pytest-benchmark

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.rounds_ms)

    @property
    def stdev_ms(self) -> float:
        return statistics.stdev(self.rounds_ms) if len(self.rounds_ms) > 1 else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.rounds_ms, q)

    def throughput(self, items: int) -> float:
        """Items per second at the mean latency."""
        return items / (self.mean_ms / 1000.0)


@dataclass(frozen=True)
class GenerationTiming:
    """Per-round step times (ms) of greedy decoding: in every round, step 0 is the prompt's prefill
    with the first new token, each later step one decoded token for every row of the batch."""

    rounds: tuple[tuple[float, ...], ...]
    batch_size: int
    prompt_tokens: int  #: tokens per prompt row, padding included (what the prefill computed)
    warmup: int

    @property
    def end_to_end_ms(self) -> tuple[float, ...]:
        return tuple(sum(steps) for steps in self.rounds)

    @property
    def ttft_ms(self) -> float:
        """Time to first token: median over rounds."""
        return statistics.median(steps[0] for steps in self.rounds)

    @property
    def decode_steps_ms(self) -> tuple[float, ...]:
        return tuple(step for steps in self.rounds for step in steps[1:])

    def tpot_ms(self, q: float) -> float | None:
        """Time per output token after the first, percentile `q` over every decode step."""
        steps = self.decode_steps_ms
        return percentile(steps, q) if steps else None

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Tokens decoded after the first, over the batch, per second of decoding: median round."""
        rates = [
            self.batch_size * (len(steps) - 1) / (sum(steps[1:]) / 1000.0)
            for steps in self.rounds
            if len(steps) > 1 and sum(steps[1:]) > 0
        ]
        return statistics.median(rates) if rates else None

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.batch_size * self.prompt_tokens / (self.ttft_ms / 1000.0)


def time_generation(
    generate: Callable[[], Sequence[float]], config: MeasureConfig
) -> tuple[tuple[float, ...], ...]:
    """Warm up, then rounds of `generate` (returning its step times, ms) until both the minimum
    count and the minimum duration are reached."""
    for _ in range(config.warmup):
        generate()
    rounds: list[tuple[float, ...]] = []
    total_ms = 0.0
    while len(rounds) < config.max_rounds and (
        len(rounds) < config.min_rounds or total_ms < config.min_time_s * 1000
    ):
        rounds.append(tuple(generate()))
        total_ms += sum(rounds[-1])
    return tuple(rounds)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rounds_for(per_call_s: float, config: MeasureConfig) -> int:
    """How many rounds reach both the minimum count and the minimum duration."""
    needed = math.ceil(config.min_time_s / per_call_s) if per_call_s > 0 else config.min_rounds
    return max(config.min_rounds, min(needed, config.max_rounds))


def time_rounds(fn: Callable[[], Any], config: MeasureConfig, device_kind: str = "cpu") -> Timing:
    """Warm up, then time rounds with the right clock for the device."""
    for _ in range(config.warmup):
        fn()
    if device_kind in ("cuda", "rocm"):
        return Timing(tuple(_cuda_event_rounds(fn, config)), config.warmup, "cuda_events")
    sync = _mps_sync() if device_kind == "mps" else None
    rounds: list[float] = []
    total = 0.0
    while len(rounds) < config.max_rounds and (len(rounds) < config.min_rounds or total < config.min_time_s):
        start = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        elapsed = time.perf_counter() - start
        rounds.append(elapsed * 1000.0)
        total += elapsed
    return Timing(tuple(rounds), config.warmup, "perf_counter")


def _cuda_event_rounds(fn: Callable[[], Any], config: MeasureConfig) -> list[float]:
    import torch

    rounds: list[float] = []
    total_ms = 0.0
    while len(rounds) < config.max_rounds and (
        len(rounds) < config.min_rounds or total_ms < config.min_time_s * 1000
    ):
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        start.record()
        fn()
        end.record()
        end.synchronize()
        rounds.append(float(start.elapsed_time(end)))
        total_ms += rounds[-1]
    return rounds


def _mps_sync() -> Callable[[], None]:
    import torch

    return torch.mps.synchronize


def synchronizer(device_kind: str) -> Callable[[], None] | None:
    """The call that waits for queued device work, for timers that only see the host."""
    if device_kind in ("cuda", "rocm"):
        import torch

        return torch.cuda.synchronize
    if device_kind == "mps":
        return _mps_sync()
    return None


def current_rss_mb() -> float | None:
    """Resident set size of this process (Linux /proc), in MiB."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return None


@dataclass
class PeakMemory:
    """Filled in by `sample_peak_memory`: RSS when the block began, the highest RSS seen, and
    CUDA's own allocation peak."""

    start_rss_mb: float | None = None
    rss_mb: float | None = None
    cuda_mb: float | None = None

    @property
    def added_mb(self) -> float | None:
        """How far RSS rose above where it was when the block began: what the block's work added."""
        if self.rss_mb is None or self.start_rss_mb is None:
            return None
        return max(self.rss_mb - self.start_rss_mb, 0.0)


@contextmanager
def sample_peak_memory(device_kind: str, interval_s: float = 0.005) -> Iterator[PeakMemory]:
    """Sample RSS in a thread while the block runs; on CUDA also read max_memory_allocated."""
    start = current_rss_mb()
    peak = PeakMemory(start_rss_mb=start, rss_mb=start)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval_s):
            rss = current_rss_mb()
            if rss is not None and (peak.rss_mb is None or rss > peak.rss_mb):
                peak.rss_mb = rss

    cuda = device_kind in ("cuda", "rocm")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()
        rss = current_rss_mb()
        if rss is not None and (peak.rss_mb is None or rss > peak.rss_mb):
            peak.rss_mb = rss
        if cuda:
            import torch

            peak.cuda_mb = torch.cuda.max_memory_allocated() / 2**20
