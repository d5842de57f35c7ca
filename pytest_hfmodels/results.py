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
    #: the whole process's highest RSS during the timed rounds (torch, every runtime and other models
    #: included): what the process needed, not what the model costs
    process_peak_rss_mb: float | None = None
    #: bytes of the model's parameters and buffers (PyTorch modes), or of its ONNX file and external
    #: data (exported modes)
    weights_mb: float | None = None
    #: RSS after loading the model minus before (its runtime's packages imported first); carried to
    #: the cases that reuse the loaded model, as load_time_s is
    model_load_mb: float | None = None
    #: peak RSS during the timed rounds minus RSS just before them: what running the model adds
    inference_peak_mb: float | None = None
    device_peak_mb: float | None = None  #: CUDA's max_memory_allocated over the timed rounds
    #: loading the model this case ran on, its ONNX conversion excluded (onnx_conversion_time_s); a
    #: runner reused from an earlier case carries the time its load was measured at (model_reused)
    load_time_s: float | None = None
    model_reused: bool | None = None  #: the loaded model came from an earlier case of this process
    first_call_ms: float | None = None
    iterations: int | None = None
    warmup: int | None = None
    timer: str | None = None  #: which timer produced the latencies
    contended: bool | None = None  #: other xdist workers were running at the same time
    threads: int | None = None  #: intra-op CPU threads the runtime reported using
    #: where the ONNX file came from: huggingface (the repo's own) | pytorch_conversion
    onnx_source: str | None = None
    onnx_conversion_status: str | None = None  #: original | converted | failed (no valid export)
    onnx_conversion_time_s: float | None = None  #: wall time of the conversion that made the file
    onnx_converted_at: float | None = None  #: when it was converted (Unix time); None for a Hub file
    onnx_cache_hit: bool | None = None  #: the file came from the cache (converted or downloaded before)
    onnx_local_path: str | None = None
    scenario: str | None = None  #: forward (one call) | generate (greedy decoding of new_tokens)
    new_tokens: int | None = None  #: tokens generated per row, every runtime exactly this many
    #: generate: from the call to the first new token (prefill + first token), median over rounds
    ttft_ms: float | None = None
    tpot_ms: float | None = None  #: time per output token after the first: p50 over every decode step
    tpot_p90_ms: float | None = None
    decode_tokens_per_s: float | None = None  #: batch x (new_tokens - 1) / decode time, median round
    prefill_tokens_per_s: float | None = None  #: batch x prompt tokens / TTFT
    output_digest: str | None = None  #: sha256 of the generated ids: equal digests, equal tokens


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
    #: a short human-readable sample of what the model answered (top labels, generated text,
    #: transcript, box count...): a reader sees that it works, not only that a check passed
    output_sample: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        fields = dict(data)
        measurement = dict(fields.get("measurement", {}))
        # A journal written before schema version 7 named the process peak by what it was not.
        if "peak_memory_mb" in measurement:
            measurement["process_peak_rss_mb"] = measurement.pop("peak_memory_mb")
        fields["measurement"] = Measurement(**measurement)
        fields.setdefault("weights", None)
        return cls(**fields)
