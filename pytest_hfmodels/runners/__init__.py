"""Runners: one module per mode behind one protocol, resolved lazily by mode name.

Adding a mode is one module exposing `RUNNER` (a class implementing `Runner`) and one line in
`MODES`. This package never imports torch or a runtime at module level.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..hardware import Device
from ..registry import ModelEntry


@dataclass(frozen=True)
class ModeInfo:
    """What the plugin needs to know about a mode before importing it."""

    name: str
    module: str  #: module defining RUNNER
    hardware: tuple[str, ...]  #: device kinds the mode can run on (base labels)
    packages: tuple[str, ...]  #: importable modules the mode needs
    #: modalities whose input size the mode can set: text length in tokens, audio length in seconds
    sized: tuple[str, ...] = ()


MODES: dict[str, ModeInfo] = {
    info.name: info
    for info in (
        ModeInfo(
            "pipeline",
            f"{__name__}.pipeline",
            ("cpu", "cuda", "rocm", "mps"),
            ("torch", "transformers"),
            sized=("audio",),  # a pipeline tokenises text itself: its length is the text's
        ),
        ModeInfo(
            "from_pretrained",
            f"{__name__}.from_pretrained",
            ("cpu", "cuda", "rocm", "mps"),
            ("torch", "transformers"),
            sized=("text", "audio"),
        ),
        ModeInfo(
            "onnxruntime",
            f"{__name__}.onnxruntime",
            ("cpu", "cuda", "rocm"),
            ("onnxruntime", "onnx", "torch", "transformers"),
            sized=("text",),  # the exported whisper encoder takes exactly 30 s of features
        ),
        ModeInfo(
            "openvino",
            f"{__name__}.openvino",
            ("cpu", "ov-gpu", "ov-npu"),
            ("openvino", "onnx", "torch", "transformers"),
            sized=("text",),
        ),
    )
}


class Runner(Protocol):
    """load(path, hardware) -> make_inputs() -> infer(inputs) -> check(inputs, outputs)."""

    mode: str
    #: CPU threads the runtime may use, set before `load`; None: the runtime's own default
    threads: int | None
    #: the intra-op threads the runtime reports it uses, after `load`; None where it cannot tell
    threads_used: int | None

    def __init__(self, entry: ModelEntry, device: Device) -> None: ...

    def load(self, model_dir: Path) -> None:
        """Load the model from `model_dir` onto the device."""

    def make_inputs(self, batch_size: int = 1, input_size: int | None = None) -> Any:
        """Inputs for one inference, made by the model's own tokenizer or processor.

        `input_size`: tokens for text, seconds for audio; None: the sample's natural size.
        """

    def infer(self, inputs: Any) -> Any:
        """One inference; returns the outputs `check` expects."""

    def check(self, inputs: Any, outputs: Any) -> None:
        """Assert behaviour that could fail; raise CheckFailed if it does not hold."""

    def close(self) -> None:
        """Release the model and any device memory it holds."""


def runner_class(mode: str) -> type[Runner]:
    cls: type[Runner] = importlib.import_module(MODES[mode].module).RUNNER
    return cls
