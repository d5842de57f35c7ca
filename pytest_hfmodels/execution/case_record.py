"""What one case did, gathered while it runs and turned into a `ResultRow` for its report."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pytest_hfmodels.cases.expand import Case
from pytest_hfmodels.cases.settings import MeasureConfig
from pytest_hfmodels.errors import CaseFailedError
from pytest_hfmodels.execution.failures import classify
from pytest_hfmodels.execution.measure import (
    Timing,
    rounds_for,
    sample_peak_memory,
    synchronizer,
    time_rounds,
)
from pytest_hfmodels.results import Measurement, ResultRow
from pytest_hfmodels.runners import Runner


@dataclass
class CaseRecord:
    """Mutable while the case runs (one per test item); frozen into a row at the end."""

    case: Case
    device_name: str | None = None
    model_type: str | None = None
    parameters: int | None = None
    measurement: Measurement = field(default_factory=Measurement)
    outputs: Any = None  #: the last outputs, for tests that want to look further
    inputs: Any = None  #: the inputs `run` made: `benchmark` times the very same ones

    def measured(self, **values: Any) -> None:
        self.measurement = dataclasses.replace(self.measurement, **values)

    def run(self, runner: Runner, check: bool = True) -> Any:
        """One inference on the case's batch, timed as the first call, its outputs checked."""
        with self._classified():
            inputs = runner.make_inputs(self.case.batch_size, self.case.input_size)
            start = time.perf_counter()
            outputs = runner.infer(inputs)
            self.measured(
                first_call_ms=(time.perf_counter() - start) * 1000.0,
                batch_size=self.case.batch_size,
                sequence_length=_sequence_length(inputs),
                audio_seconds=self._audio_seconds(),
            )
            if check:
                runner.check(inputs, outputs)
        # What the runtime really computed in (OpenVINO may pick bf16 on its own, say).
        self.measured(
            precision=getattr(runner, "precision", None),
            threads=getattr(runner, "threads_used", None),
            **_onnx_fields(runner),
        )
        self.inputs, self.outputs = inputs, outputs
        return outputs

    def benchmark(
        self,
        runner: Runner,
        config: MeasureConfig,
        device_kind: str,
        benchmark: Any = None,
        contended: bool = False,
    ) -> Timing:
        """Warm-up and timed rounds of `infer` on the same inputs; peak memory meanwhile.

        With an active pytest-benchmark fixture the rounds go through its `pedantic` API, so its
        own options and JSON keep working; otherwise (it turns itself off under xdist) our timer.
        """
        with self._classified():
            inputs = self.inputs
            if inputs is None:  # benchmark without a checked run first
                inputs = runner.make_inputs(self.case.batch_size, self.case.input_size)
            sync = synchronizer(device_kind)

            def call() -> None:
                runner.infer(inputs)
                if sync is not None and benchmark is not None:
                    sync()  # pytest-benchmark times on the host: wait for the device's work

            with sample_peak_memory(device_kind) as peak:
                if benchmark is not None and not benchmark.disabled:
                    start = time.perf_counter()
                    call()
                    rounds = rounds_for(time.perf_counter() - start, config)
                    benchmark.pedantic(call, rounds=rounds, warmup_rounds=config.warmup, iterations=1)
                    data = benchmark.stats.stats.data
                    timing = Timing(tuple(v * 1000.0 for v in data), config.warmup, "pytest-benchmark")
                else:
                    timing = time_rounds(call, config, device_kind)
        self.measured(
            latency_mean_ms=timing.mean_ms,
            latency_p50_ms=timing.percentile(50),
            latency_p90_ms=timing.percentile(90),
            latency_p95_ms=timing.percentile(95),
            latency_p99_ms=timing.percentile(99),
            latency_stdev_ms=timing.stdev_ms,
            throughput_per_s=timing.throughput(self.case.batch_size),
            peak_memory_mb=peak.peak_mb,
            iterations=len(timing.rounds_ms),
            warmup=timing.warmup,
            timer=timing.timer,
            contended=contended,
        )
        return timing

    def _audio_seconds(self) -> float | None:
        # The mode made audio of the case's length (cases.input_sizes gives audio cases a size
        # only in modes that can set it); other inputs have no audio length.
        if self.case.entry.modality == "audio" and self.case.input_size is not None:
            return float(self.case.input_size)
        return None

    @contextmanager
    def _classified(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            failure = classify(exc)
            raise CaseFailedError(f"[{failure.name}] {self.case.id}: {failure.cause}") from exc

    def to_row(
        self,
        nodeid: str,
        outcome: str,
        duration_s: float,
        error: BaseException | None,
        skip_reason: str | None,
        worker: str,
    ) -> ResultRow:
        entry = self.case.entry
        error_class = error_message = suggested_fix = None
        if error is not None:
            failure = classify(error)
            error_class, error_message, suggested_fix = failure.name, failure.cause, failure.suggested_fix
        elif skip_reason is not None:
            error_message = skip_reason.removeprefix("Skipped: ")  # pytest's prefix says what status says
        return ResultRow(
            nodeid=nodeid,
            case_id=self.case.id,
            model_key=entry.key,
            model_id=entry.id,
            family=entry.family,
            task=entry.task,
            source=entry.source,
            weights=self.case.weights,
            model_type=self.model_type,
            architecture=entry.architecture,
            mode=self.case.mode,
            hardware=self.case.hardware,
            device_name=self.device_name,
            status={"passed": "pass", "failed": "fail", "skipped": "skip"}[outcome],
            error_class=error_class,
            error_message=error_message,
            suggested_fix=suggested_fix,
            duration_s=duration_s,
            worker=worker,
            parameters=self.parameters,
            measurement=self.measurement,
        )


def _onnx_fields(runner: Runner) -> dict[str, Any]:
    """Where the ONNX file of an exported-model runner came from (none for PyTorch modes)."""
    onnx = getattr(runner, "onnx", None)
    if onnx is None:
        return {}
    return {
        "onnx_source": onnx.source,
        "onnx_conversion_status": onnx.status,
        "onnx_conversion_time_s": onnx.seconds,
        "onnx_local_path": str(onnx.path),
    }


def _sequence_length(inputs: Any) -> int | None:
    """Tokens per row of a tokenised text input; None for inputs that are not token ids."""
    ids = inputs.get("input_ids") if isinstance(inputs, dict) else None
    shape = getattr(ids, "shape", None)
    return int(shape[1]) if shape is not None and len(shape) == 2 else None
