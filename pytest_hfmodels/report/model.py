"""What a run report holds: the run, its compatibility matrix and its performance rows, as frozen values.

Everything here is what was measured; nothing is re-measured or filled in. A cell of the
compatibility matrix is a model x mode x device verdict of one run (one failing case fails it),
the same rule as the `run_compatibility` view it is read from (`queries`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property


@dataclass(frozen=True)
class RunInfo:
    run_id: int
    started_at: datetime
    finished_at: datetime | None
    host: str | None
    command_line: str | None
    git_commit: str | None
    success: bool
    package_versions: Mapping[str, str | None]


@dataclass(frozen=True)
class MatrixCell:
    model_id: str
    model_key: str | None
    mode: str
    hardware: str
    status: str  #: pass | fail | skip
    passed: int
    failed: int
    skipped: int
    error_class: str | None
    error_message: str | None
    suggested_fix: str | None


@dataclass(frozen=True)
class PerformanceRow:
    model_id: str
    model_key: str | None
    mode: str
    hardware: str
    device_name: str | None
    batch_size: int | None
    sequence_length: int | None
    audio_seconds: float | None
    precision: str | None
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    latency_p99_ms: float | None
    latency_mean_ms: float | None
    throughput_per_s: float | None
    peak_memory_mb: float | None
    load_time_s: float | None
    contended: bool | None


@dataclass(frozen=True)
class RunReport:
    run: RunInfo
    cells: tuple[MatrixCell, ...]
    performance: tuple[PerformanceRow, ...]

    @property
    def columns(self) -> list[tuple[str, str]]:
        """Matrix columns: (mode, hardware), sorted."""
        return sorted({(cell.mode, cell.hardware) for cell in self.cells})

    @property
    def models(self) -> list[tuple[str, str | None]]:
        """Matrix rows: (model_id, model_key), sorted by key."""
        return sorted(
            {(cell.model_id, cell.model_key) for cell in self.cells}, key=lambda m: (m[1] or m[0], m[0])
        )

    @cached_property
    def _cells_by_key(self) -> dict[tuple[str, str, str], MatrixCell]:
        return {(c.model_id, c.mode, c.hardware): c for c in self.cells}

    def cell(self, model_id: str, mode: str, hardware: str) -> MatrixCell | None:
        return self._cells_by_key.get((model_id, mode, hardware))


#: the performance table's columns, the same in every report format
PERFORMANCE_COLUMNS = (
    "model",
    "mode",
    "hardware",
    "batch",
    "seq",
    "audio s",
    "precision",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "mean ms",
    "items/s",
    "peak MB",
    "load s",
    "contended",
)


def performance_values(p: PerformanceRow) -> tuple[object, ...]:
    """One performance row's cells, in PERFORMANCE_COLUMNS order."""
    return (
        model_label(p.model_id, p.model_key),
        p.mode,
        p.hardware,
        p.batch_size,
        p.sequence_length,
        p.audio_seconds,
        p.precision,
        p.latency_p50_ms,
        p.latency_p90_ms,
        p.latency_p99_ms,
        p.latency_mean_ms,
        p.throughput_per_s,
        p.peak_memory_mb,
        p.load_time_s,
        p.contended,
    )


def model_label(model_id: str, model_key: str | None) -> str:
    return model_id if not model_key or model_key == model_id else f"{model_key} ({model_id})"
