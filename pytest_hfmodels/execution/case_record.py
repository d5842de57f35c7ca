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
from pytest_hfmodels.errors import CaseFailedError, GenerationUnsupportedError, ModelConversionError
from pytest_hfmodels.execution.failures import classify, error_chain
from pytest_hfmodels.execution.measure import (
    GenerationTiming,
    PeakMemory,
    Timing,
    rounds_for,
    sample_peak_memory,
    synchronizer,
    time_generation,
    time_rounds,
)
from pytest_hfmodels.results import Measurement, ResultRow
from pytest_hfmodels.runners import Runner
from pytest_hfmodels.runners.output_sample import describe_outputs


@dataclass
class CaseRecord:
    """Mutable while the case runs (one per test item); frozen into a row at the end."""

    case: Case
    device_name: str | None = None
    model_type: str | None = None
    parameters: int | None = None
    measurement: Measurement = field(default_factory=Measurement)
    outputs: Any = None  #: the last outputs, for tests that want to look further
    output_sample: str | None = None  #: what the model answered, in a few words (ResultRow)
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
            self.output_sample = describe_outputs(runner, inputs, outputs)
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
            **_timed_fields(timing, self.case.batch_size, peak),
            contended=contended,
        )
        return timing

    def generate(
        self,
        runner: Runner,
        config: MeasureConfig,
        new_tokens: int,
        device_kind: str,
        *,
        check: bool = True,
        timed: bool = True,
        contended: bool = False,
    ) -> None:
        """Greedy decoding of `new_tokens` tokens: a first run checked token for token (against
        PyTorch's `generate` in the exported modes), then warm-up and timed rounds of the same
        prompt, each timed per step: time to first token, per-token latency, tokens/s."""
        case = self.case
        with self._classified():
            inputs = runner.make_generation_inputs(case.batch_size, case.input_size)
            start = time.perf_counter()
            first = runner.generate(inputs, new_tokens)
            self.measured(
                first_call_ms=(time.perf_counter() - start) * 1000.0,
                batch_size=case.batch_size,
                sequence_length=first.prompt_tokens if case.entry.modality == "text" else None,
                audio_seconds=self._audio_seconds(),
                scenario="generate",
                new_tokens=new_tokens,
                output_digest=first.digest,
            )
            if check:
                runner.check_generation(inputs, first)
            self.output_sample = _sample_text(runner.decode(first)[0])
            self.measured(
                precision=getattr(runner, "precision", None),
                threads=getattr(runner, "threads_used", None),
                **_generation_export_fields(runner),
            )
            if not timed:
                return
            with sample_peak_memory(device_kind) as peak:
                rounds = time_generation(lambda: runner.generate(inputs, new_tokens).step_ms, config)
        timing = GenerationTiming(rounds, case.batch_size, first.prompt_tokens, config.warmup)
        whole = Timing(timing.end_to_end_ms, config.warmup, "perf_counter per step")
        self.measured(
            **_timed_fields(whole, case.batch_size, peak),
            ttft_ms=timing.ttft_ms,
            tpot_ms=timing.tpot_ms(50),
            tpot_p90_ms=timing.tpot_ms(90),
            decode_tokens_per_s=timing.decode_tokens_per_s,
            prefill_tokens_per_s=timing.prefill_tokens_per_s,
            contended=contended,
        )

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
        except GenerationUnsupportedError:
            raise  # not a failure of the model: a scenario its runtime cannot measure (a skip)
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
        measurement = dataclasses.replace(self.measurement, scenario=self.case.scenario)
        if error is not None:
            failure = classify(error)
            error_class, error_message, suggested_fix = failure.name, failure.cause, failure.suggested_fix
            # No valid ONNX export: the conversion registry keeps the attempt.
            if any(isinstance(cause, ModelConversionError) for cause in error_chain(error)):
                measurement = dataclasses.replace(
                    measurement, onnx_source="pytorch_conversion", onnx_conversion_status="failed"
                )
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
            measurement=measurement,
            output_sample=self.output_sample,
        )


def _onnx_fields(runner: Runner) -> dict[str, Any]:
    """Where the ONNX file of an exported-model runner came from (none for PyTorch modes)."""
    onnx = getattr(runner, "onnx", None)
    if onnx is None:
        return {}
    if onnx.source == "huggingface":  # the repo's own file, checked against PyTorch, never converted
        return {
            "onnx_source": "huggingface",
            "onnx_conversion_status": "original",
            "onnx_cache_hit": onnx.from_cache,
            "onnx_local_path": str(onnx.path),
        }
    return {
        "onnx_source": "pytorch_conversion",
        "onnx_conversion_status": "converted",
        "onnx_conversion_time_s": onnx.seconds,
        "onnx_converted_at": onnx.created_at,
        "onnx_cache_hit": not onnx.converted_now,
        "onnx_local_path": str(onnx.path),
    }


def _timed_fields(timing: Timing, batch_size: int, peak: PeakMemory) -> dict[str, Any]:
    """The latency, throughput and memory figures of timed rounds (of calls, or of generations)."""
    return {
        "latency_mean_ms": timing.mean_ms,
        "latency_p50_ms": timing.percentile(50),
        "latency_p90_ms": timing.percentile(90),
        "latency_p95_ms": timing.percentile(95),
        "latency_p99_ms": timing.percentile(99),
        "latency_stdev_ms": timing.stdev_ms,
        "throughput_per_s": timing.throughput(batch_size),
        "process_peak_rss_mb": peak.rss_mb,
        "inference_peak_mb": peak.added_mb,
        "device_peak_mb": peak.cuda_mb,
        "iterations": len(timing.rounds_ms),
        "warmup": timing.warmup,
        "timer": timing.timer,
    }


def _generation_export_fields(runner: Runner) -> dict[str, Any]:
    """The with-past graphs an exported-model runner decodes with (none for PyTorch modes); the
    graph's export is conversion time, its session's load the rest of the load."""
    export = getattr(runner, "generation_export", None)
    if export is None:
        return {}
    converted = export.converted_now
    load_s = getattr(runner, "generation_load_s", None)
    return {
        "onnx_source": "pytorch_conversion",
        "onnx_conversion_status": "converted",
        "onnx_conversion_time_s": export.seconds,
        "onnx_cache_hit": not converted,
        "onnx_local_path": str(export.path),
        **({} if load_s is None else {"load_time_s": load_s - (export.seconds if converted else 0.0)}),
    }


#: characters of an output sample: a glance, not a transcript
SAMPLE_CHARS = 120


def _sample_text(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def _sequence_length(inputs: Any) -> int | None:
    """Tokens per row of a tokenised text input; None for inputs that are not token ids."""
    ids = inputs.get("input_ids") if isinstance(inputs, dict) else None
    shape = getattr(ids, "shape", None)
    return int(shape[1]) if shape is not None and len(shape) == 2 else None
