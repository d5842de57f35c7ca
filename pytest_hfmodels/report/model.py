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
    family: str | None  #: from the models table; None for a model stored without one
    mode: str
    hardware: str
    status: str  #: pass | fail | skip
    passed: int
    failed: int
    skipped: int
    error_class: str | None
    error_message: str | None
    suggested_fix: str | None

    @property
    def reason(self) -> str:
        """'<status>: <class>: <message>', the class where a case failed (a skip has none)."""
        what = f"{self.error_class}: " if self.error_class and self.status == "fail" else ""
        return f"{self.status}: {what}{self.error_message or ''}"


@dataclass(frozen=True)
class FamilyModeCell:
    """A family x mode verdict of one run, over its models and devices (one failing case fails it)."""

    family: str
    mode: str
    passed: int  #: cases
    failed: int
    skipped: int
    #: why cases failed or were skipped, each distinct text once ("<status>: <class>: <message>")
    reasons: tuple[str, ...]

    @property
    def status(self) -> str:
        return "fail" if self.failed else "pass" if self.passed else "skip"

    @property
    def summary(self) -> str:
        """'pass 12', 'fail 1, pass 11', 'skip 3', ...: the status first, then the other counts."""
        counts = {"fail": self.failed, "pass": self.passed, "skip": self.skipped}
        order = [self.status, *(name for name in counts if name != self.status)]
        return ", ".join(f"{name} {counts[name]}" for name in order if counts[name])


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

    @cached_property
    def family_modes(self) -> tuple[FamilyModeCell, ...]:
        """Every family x mode the run has cases of, sorted; a model without a family is its own."""
        groups: dict[tuple[str, str], list[MatrixCell]] = {}
        for cell in self.cells:
            groups.setdefault((cell.family or cell.model_key or cell.model_id, cell.mode), []).append(cell)
        return tuple(
            FamilyModeCell(
                family,
                mode,
                sum(c.passed for c in cells),
                sum(c.failed for c in cells),
                sum(c.skipped for c in cells),
                tuple(dict.fromkeys(c.reason for c in cells if c.status != "pass" and c.error_message)),
            )
            for (family, mode), cells in sorted(groups.items())
        )

    @property
    def modes(self) -> list[str]:
        return sorted({cell.mode for cell in self.cells})

    def family_mode(self, family: str, mode: str) -> FamilyModeCell | None:
        return next((c for c in self.family_modes if (c.family, c.mode) == (family, mode)), None)


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
