"""Runners: one module per mode behind one protocol, resolved lazily by mode name.

Adding a mode is one module exposing `RUNNER` (a class implementing `Runner`) and one line in
`modes.MODES`. This package never imports torch or a runtime at module level.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.modes import MODES
from pytest_hfmodels.registry.model import ModelEntry


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
