"""Result rows: what one generated case measured and how it ended, as primitives only.

A row is built on the process that ran the case (an xdist worker or the only process), travels
to the controller inside the test report's `user_properties`, and only the controller stores it.
A value that was not measured is None (NULL in the database), never a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: name of the user_properties entry carrying a row from the worker to the controller
USER_PROPERTY = "hfmodels_result"

STATUSES = ("pass", "fail", "skip")


@dataclass(frozen=True)
class Measurement:
    """Timings and memory of one case, filled in by the runner and the measurement code."""

    batch_size: int | None = None
    sequence_length: int | None = None
    audio_seconds: float | None = None  #: length of the audio made for each batch item
    precision: str | None = None  #: e.g. fp32, bf16 (what the runtime actually ran)
    latency_mean_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_stdev_ms: float | None = None
    throughput_per_s: float | None = None  #: items (batch elements) per second
    peak_memory_mb: float | None = None
    #: loading the model this case ran on; a runner reused from an earlier case carries the time
    #: its load was measured at (model_reused says so)
    load_time_s: float | None = None
    model_reused: bool | None = None  #: the loaded model came from an earlier case of this process
    first_call_ms: float | None = None
    iterations: int | None = None
    warmup: int | None = None
    timer: str | None = None  #: which timer produced the latencies
    contended: bool | None = None  #: other xdist workers were running at the same time
    threads: int | None = None  #: intra-op CPU threads the runtime reported using
    onnx_source: str | None = None  #: huggingface | pytorch_conversion | cache
    onnx_conversion_status: str | None = None
    onnx_conversion_time_s: float | None = None
    onnx_local_path: str | None = None


@dataclass(frozen=True)
class ResultRow:
    """One generated case's outcome."""

    nodeid: str
    case_id: str
    model_key: str
    model_id: str
    family: str
    task: str
    source: str
    #: random (tiny and random sources, Hub models under --hf-weights random) | pretrained;
    #: None in a row recorded before rows said (a journal of an older version)
    weights: str | None
    model_type: str | None
    architecture: str
    mode: str
    hardware: str  #: hardware label used in the test id (cpu, cuda, ov-gpu...)
    device_name: str | None
    status: str  #: pass | fail | skip
    error_class: str | None
    error_message: str | None
    suggested_fix: str | None
    duration_s: float  #: the test call's wall time as pytest measured it
    worker: str  #: xdist worker id, or "main"
    parameters: int | None
    measurement: Measurement

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        fields = dict(data)
        fields["measurement"] = Measurement(**fields.get("measurement", {}))
        fields.setdefault("weights", None)
        return cls(**fields)
