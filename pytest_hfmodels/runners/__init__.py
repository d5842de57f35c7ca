"""Runners: one module per mode behind one protocol, resolved lazily by mode name.

Adding a mode is one module exposing `RUNNER` (a class implementing `Runner`) and one line in
`modes.MODES`. This package never imports torch or a runtime at module level.

Modes whose scenarios include `generate` (from_pretrained, onnxruntime, openvino) implement the
protocol's generation methods too: greedy decoding of exactly N new tokens, timed per step
(`runners.generation`); the exported modes also set `generation_export` (the with-past graphs,
`convert.onnx.with_past.WithPastExport`, made on the first generation call) and `generation_load_s`
(that call's export or cache hit plus session load).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.modes import MODES
from pytest_hfmodels.registry.model import ModelEntry

if TYPE_CHECKING:
    from pytest_hfmodels.runners.generation import GenerationInputs, GenerationRun


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

    # Generation: modes whose scenarios include `generate`.

    def make_generation_inputs(self, batch_size: int = 1, input_size: int | None = None) -> GenerationInputs:
        """Prompts of `batch_size` rows by the model's own tokenizer or feature extractor (left-padded
        for decoder-only models); `input_size`: tokens of text (exactly that many per row) or seconds
        of audio; None: the sample prompts. Models that do not generate (vision-language models,
        encoders, an encoder-decoder without a with-past export) raise GenerationUnsupportedError
        naming the model_type and why: the case is a skip."""

    def generate(self, inputs: GenerationInputs, new_tokens: int) -> GenerationRun:
        """Greedy decoding of exactly `new_tokens` tokens per row (EOS blocked); step 0 (prefill and
        first token) timed from the call's start, then one time per decode step."""

    def check_generation(self, inputs: GenerationInputs, run: GenerationRun) -> None:
        """Exported modes: every token equal to PyTorch's greedy `generate` (fp32, CPU), else
        NumericalMismatchError naming the batch row, the step and both ids. PyTorch modes: batch x
        new_tokens ids of the vocabulary, else CheckFailed."""

    def decode(self, run: GenerationRun) -> list[str]:
        """Each row's generated text, special tokens skipped."""


def runner_class(mode: str) -> type[Runner]:
    cls: type[Runner] = importlib.import_module(MODES[mode].module).RUNNER
    return cls
