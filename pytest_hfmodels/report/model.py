"""What a run report holds, as frozen values: the run, its summary, what changed since the run it is
compared with, trends over earlier runs, scaling, generation and the performance table.

Everything here is what was measured; nothing is re-measured or filled in. A cell of the
compatibility matrix is a model x mode x device verdict of one run (one failing case fails it),
the same rule as the `run_compatibility` view it is read from (`queries`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

#: the mode every speed-up is measured against: the model as transformers users load it
BASELINE_MODE = "from_pretrained"
#: models a chart draws at most: more are unreadable (and slow to draw); the tables hold every model
MAX_PLOTTED_MODELS = 24


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
    interrupted: bool | None  #: stored from the journal of a killed session

    @property
    def commit(self) -> str:
        """'commit' and the commit's first 10 characters, or 'no commit'."""
        return f"commit {self.git_commit[:10]}" if self.git_commit else "no commit"


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
class StatusCount:
    """Cases of one mode on one device, by outcome."""

    mode: str
    hardware: str
    passed: int
    failed: int
    skipped: int


@dataclass(frozen=True)
class FailureClass:
    """Failed cases of one failure class (execution.failures), with the fix it suggests."""

    error_class: str  #: 'unclassified' where a failure was stored without one
    cases: int
    suggested_fix: str | None
    example_case: str  #: the first case id of the class, to rerun it with `-k`
    example_message: str | None


@dataclass(frozen=True)
class Fastest:
    """The fastest mode for a model on a device at one batch size, against from_pretrained.

    A mode's p50 at a batch is the one at the shortest input it measured there (a pipeline's own text
    or an exported audio model's own clip, else the sweep's smallest length). The speed-up is
    from_pretrained's p50 over the fastest mode's, the median over the lengths both measured: None
    where they share none (a pipeline tokenises its own text) or from_pretrained measured nothing.
    """

    model_id: str
    model_key: str | None
    hardware: str
    batch_size: int | None
    mode: str
    p50_ms: float
    baseline_p50_ms: float | None
    speedup: float | None
    modes: int  #: how many modes were measured at this batch


@dataclass(frozen=True)
class CaseKey:
    """What identifies a case from one run to the next (one run may hold several precisions of it)."""

    model_id: str
    model_key: str | None
    mode: str
    hardware: str
    scenario: str
    batch_size: int | None
    sequence_length: int | None
    audio_seconds: float | None

    @property
    def label(self) -> str:
        """'bert-tiny onnxruntime/cpu b4 s32', as short as the case ids."""
        parts = [self.model_key or self.model_id, f"{self.mode}/{self.hardware}"]
        if self.scenario != "forward":
            parts.append(self.scenario)
        if self.batch_size is not None:
            parts.append(f"b{self.batch_size}")
        if self.sequence_length is not None:
            parts.append(f"s{self.sequence_length}")
        if self.audio_seconds is not None:
            parts.append(f"{self.audio_seconds:g}s")
        return " ".join(parts)

    @property
    def anchor(self) -> str:
        """The key as one string, the same the page's script builds from a table row."""
        values = (
            self.model_id,
            self.mode,
            self.hardware,
            self.scenario,
            self.batch_size,
            self.sequence_length,
            self.audio_seconds,
        )
        return "|".join(_key_text(value) for value in values)


@dataclass(frozen=True)
class CaseChange:
    """A case measured in both runs whose p50 moved by more than the threshold."""

    case: CaseKey
    before_ms: float
    after_ms: float
    delta_pct: float  #: (after - before) / before, in percent


@dataclass(frozen=True)
class StatusChange:
    """A model x mode x device cell whose verdict differs between the runs; None: not in that run."""

    model_id: str
    model_key: str | None
    mode: str
    hardware: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class RunChanges:
    """The reported run against an earlier one: what got slower, faster, or changed status."""

    baseline: RunInfo
    #: how the baseline was chosen: the previous run of the same selection, or asked for (--compare)
    chosen: str
    threshold_pct: float
    compared: int  #: cases with a p50 in both runs
    only_before: int  #: cases of the baseline the reported run does not have
    only_after: int
    regressions: tuple[CaseChange, ...]  #: slowest first
    improvements: tuple[CaseChange, ...]  #: fastest first
    status_changes: tuple[StatusChange, ...]


@dataclass(frozen=True)
class TrendPoint:
    run_id: int
    started_at: datetime
    git_commit: str | None
    p50_ms: float | None
    ttft_ms: float | None  #: generate rows only
    tpot_ms: float | None


@dataclass(frozen=True)
class Trend:
    """One case over the last runs that measured it, oldest first."""

    case: CaseKey
    points: tuple[TrendPoint, ...]
    #: why the trend is shown: 'regressed' or 'improved' against the baseline, or '' (shown for itself)
    change: str
    #: indexes into `points` where p50 rose by more than the threshold over the point before
    steps_up: tuple[int, ...]
    #: the step up the latest point still stands above: where the regression in force started
    regression_start: int | None


@dataclass(frozen=True)
class ScalingPoint:
    """Median p50 and throughput of a model x mode x device at one batch size or one input length.

    Along batch sizes at the smallest length the series measured; along lengths at its smallest batch.
    """

    model_id: str
    model_key: str | None
    mode: str
    hardware: str
    axis: str  #: batch | tokens | audio s
    x: float
    p50_ms: float | None
    throughput_per_s: float | None


@dataclass(frozen=True)
class GenerationRow:
    """A generate case: greedy decoding of new_tokens tokens per row."""

    model_id: str
    model_key: str | None
    mode: str
    hardware: str
    batch_size: int | None
    sequence_length: int | None  #: prompt tokens
    new_tokens: int | None
    ttft_ms: float | None
    tpot_ms: float | None
    tpot_p90_ms: float | None
    decode_tokens_per_s: float | None
    prefill_tokens_per_s: float | None
    latency_p50_ms: float | None  #: the whole generate call
    #: the generated ids equal from_pretrained's for the same model, device and shape; None: no
    #: from_pretrained row to compare with, or this is it
    same_as_baseline: bool | None
    output_sample: str | None


@dataclass(frozen=True)
class TableColumn:
    name: str  #: header
    kind: str  #: text | int | float | bool
    title: str  #: what the column means, shown on hover


@dataclass(frozen=True)
class PerformanceTable:
    """Every performance row of the run, made by DuckDB in the form the report is written in
    (`report.table`): formatting 100,000 rows in Python takes most of the two seconds a report may."""

    columns: tuple[TableColumn, ...]
    row_count: int
    #: the rows as Markdown table lines (None unless asked for)
    markdown_rows: str | None
    #: the rows as one JSON array of arrays in column order, then the model id (None unless asked for)
    json_rows: str | None


@dataclass(frozen=True)
class RunReport:
    run: RunInfo
    runs_stored: int  #: runs in the database, this one included
    cells: tuple[MatrixCell, ...]
    status_counts: tuple[StatusCount, ...]
    failure_classes: tuple[FailureClass, ...]
    fastest: tuple[Fastest, ...]
    changes: RunChanges | None  #: None: no earlier run shares a case with this one
    trends: tuple[Trend, ...]
    history: int  #: the most runs a trend goes back
    scaling: tuple[ScalingPoint, ...]
    scaled_models: int  #: models with scaling points; `scaling` holds the first MAX_PLOTTED_MODELS
    generation: tuple[GenerationRow, ...]
    table: PerformanceTable

    @cached_property
    def columns(self) -> list[tuple[str, str]]:
        """Matrix columns: (mode, hardware), sorted."""
        return sorted({(cell.mode, cell.hardware) for cell in self.cells})

    @cached_property
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

    @cached_property
    def modes(self) -> list[str]:
        return sorted({cell.mode for cell in self.cells})

    def family_mode(self, family: str, mode: str) -> FamilyModeCell | None:
        return next((c for c in self.family_modes if (c.family, c.mode) == (family, mode)), None)

    @property
    def totals(self) -> tuple[int, int, int]:
        """Cases passed, failed, skipped."""
        counts = self.status_counts
        return (
            sum(c.passed for c in counts),
            sum(c.failed for c in counts),
            sum(c.skipped for c in counts),
        )

    def fastest_of(self, model_id: str) -> list[Fastest]:
        return [f for f in self.fastest if f.model_id == model_id]


def _key_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):  # the shortest repr, as JavaScript's String() writes it: 1.0 is "1"
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def plural(count: int, noun: str) -> str:
    """'1 case', '3 cases', '1 matrix cell': the count and the noun that agrees with it."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def model_label(model_id: str, model_key: str | None) -> str:
    return model_id if not model_key or model_key == model_id else f"{model_key} ({model_id})"


def short_name(model_id: str, model_key: str | None) -> str:
    """The registry key where there is one: ids repeat the organisation and are long."""
    return model_key or model_id


def speedup_text(fastest: Fastest) -> str:
    """'onnxruntime 2.31x', 'from_pretrained (fastest)', or the mode alone where nothing compares."""
    if fastest.mode == BASELINE_MODE:
        return f"{fastest.mode} (fastest)"
    if fastest.speedup is None:
        return fastest.mode
    return f"{fastest.mode} {fastest.speedup:.2f}x"
