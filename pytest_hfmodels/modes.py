"""The modes as data: what each needs and where its runner lives, known before anything is imported.

The registry validates a family's `modes` against this table, the case expansion reads which
devices and input sizes a mode takes, and `runners.runner_class` imports the runner by its
module name only when a case runs. Adding a mode is one line here and one module in `runners/`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModeInfo:
    """What the plugin needs to know about a mode before importing it."""

    name: str
    module: str  #: module defining RUNNER
    hardware: tuple[str, ...]  #: device kinds the mode can run on (base labels)
    packages: tuple[str, ...]  #: importable modules the mode needs
    #: modalities whose input size the mode can set: text length in tokens, audio length in seconds
    sized: tuple[str, ...] = ()
    #: what the mode can measure: forward (one call) and, for models that generate, generate
    #: (greedy decoding timed per token). A pipeline generates inside one call it times as a whole.
    scenarios: tuple[str, ...] = ("forward",)


MODES: dict[str, ModeInfo] = {
    info.name: info
    for info in (
        ModeInfo(
            "pipeline",
            "pytest_hfmodels.runners.pipeline",
            ("cpu", "cuda", "rocm", "mps"),
            ("torch", "transformers"),
            sized=("audio",),  # a pipeline tokenises text itself: its length is the text's
        ),
        ModeInfo(
            "from_pretrained",
            "pytest_hfmodels.runners.from_pretrained",
            ("cpu", "cuda", "rocm", "mps"),
            ("torch", "transformers"),
            sized=("text", "audio"),
            scenarios=("forward", "generate"),
        ),
        ModeInfo(
            "onnxruntime",
            "pytest_hfmodels.runners.onnxruntime",
            ("cpu", "cuda", "rocm"),
            ("onnxruntime", "onnx", "torch", "transformers"),
            sized=("text",),  # the exported whisper encoder takes exactly 30 s of features
            scenarios=("forward", "generate"),
        ),
        ModeInfo(
            "openvino",
            "pytest_hfmodels.runners.openvino",
            ("cpu", "ov-gpu", "ov-npu"),
            ("openvino", "onnx", "torch", "transformers"),
            sized=("text",),
            scenarios=("forward", "generate"),
        ),
    )
}
