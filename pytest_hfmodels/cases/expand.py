"""Expanding registry entries into test cases: entries x modes x hardware, sorted, stable ids."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from pytest_hfmodels.cases.hardware import PREFERENCE, Hardware, base_label
from pytest_hfmodels.cases.settings import Settings
from pytest_hfmodels.errors import SelectionError
from pytest_hfmodels.modes import MODES
from pytest_hfmodels.registry.model import ModelEntry


@dataclass(frozen=True)
class Case:
    """One generated test: a model, a mode and a device label."""

    entry: ModelEntry
    mode: str
    hardware: str  #: device label (cpu, cuda, cuda1, ov-gpu, ...)
    batch_size: int = 1
    input_size: int | None = None  #: tokens (text) or seconds (audio); None: the sample's own
    #: --hf-weights random on a Hub entry: its configuration runs with seeded random weights
    random_weights: bool = False
    scenario: str = "forward"  #: forward | generate (greedy decoding of Settings.new_tokens)
    #: what a test parametrized with the case varies over (`coarsened`): case (every input
    #: size and scenario), runner (model x mode x device) or model (one per model)
    grain: str = "case"

    @property
    def weights(self) -> str:
        """What the case's model weights are: random or pretrained."""
        return "random" if self.random_weights else self.entry.weights

    @property
    def id(self) -> str:
        if self.grain == "model":
            return self.entry.key
        if self.grain == "runner":
            return f"{self.entry.key}-{self.mode}-{self.hardware}"
        suffix = f"-b{self.batch_size}" if self.batch_size != 1 else ""
        if self.input_size is not None:
            suffix += f"-{self.input_size}s" if self.entry.modality == "audio" else f"-s{self.input_size}"
        if self.scenario != "forward":
            suffix += f"-{self.scenario}"
        return f"{self.entry.key}-{self.mode}-{self.hardware}{suffix}"


#: the grains a test can vary over, finest first
GRAINS = ("case", "runner", "model")


def coarsened(cases: Iterable[Case], grain: str) -> list[Case]:
    """One case per model x mode x device ("runner") or per model ("model"), the first of each in
    the cases' order, at batch 1 and the sample's own size: a test that asks only for a model's
    folder gains nothing from running once per batch size."""
    if grain == "case":
        return list(cases)
    chosen: dict[tuple[str, ...], Case] = {}
    for case in cases:
        key = (case.entry.key,) if grain == "model" else (case.entry.key, case.mode, case.hardware)
        if key not in chosen:
            chosen[key] = dataclasses.replace(
                case, batch_size=1, input_size=None, scenario="forward", grain=grain
            )
    return list(chosen.values())


def hardware_for_mode(mode: str, settings: Settings, hardware: Hardware) -> tuple[str, ...]:
    """The device labels `mode` is generated for under the user's hardware selection."""
    supported = MODES[mode].hardware
    present = [label for label in hardware.labels if base_label(label) in supported]
    if settings.hardware == "cpu":
        return ("cpu",)
    if settings.hardware == "all":
        return tuple(present)
    if settings.hardware == "list":
        # An asked-for device that is absent still gets its case, which skips naming it.
        return tuple(label for label in settings.hardware_list if base_label(label) in supported)
    return (hardware.best(present),)


def input_sizes(entry: ModelEntry, mode: str, settings: Settings) -> tuple[int | None, ...]:
    """The input sizes swept for an entry in a mode; (None,) where the mode cannot set its size
    (or a Settings built by hand sweeps none)."""
    if entry.modality not in MODES[mode].sized:
        return (None,)
    sizes = settings.seq_lengths if entry.modality == "text" else settings.audio_seconds
    return tuple(sizes) or (None,)


def scenarios_for(entry: ModelEntry, mode: str, settings: Settings) -> tuple[str, ...]:
    """The scenarios measured for an entry in a mode: generate only where the model generates and
    the mode can decode step by step; by default both there, forward elsewhere."""
    possible = MODES[mode].scenarios if entry.generates else ("forward",)
    return tuple(s for s in settings.scenarios or possible if s in possible)


def expand(entries: Iterable[ModelEntry], settings: Settings, hardware: Hardware) -> list[Case]:
    """Every case the selection asks for; a mode an entry's registry rules out makes none.

    When the registries rule out every selected mode for every selected model, the run would
    collect nothing and say nothing: that is a SelectionError naming the models and their modes.
    """
    entries = tuple(entries)
    if entries and not any(entry.runs_in(mode) for entry in entries for mode in settings.modes):
        allowed = "; ".join(f"{e.key}: {', '.join(e.modes or MODES)}" for e in entries[:5])
        raise SelectionError(
            f"--hf-mode {','.join(settings.modes)}: the registries rule out these modes for every "
            f"selected model (registry field 'modes'; {allowed})"
        )
    if entries and not any(
        scenarios_for(entry, mode, settings) for entry in entries for mode in settings.modes
    ):
        raise SelectionError(
            f"--hf-scenario {','.join(settings.scenarios)}: no selected model can be measured so in "
            f"--hf-mode {','.join(settings.modes)} (generate needs a model that generates, such as "
            "gpt2, llama, t5 or whisper, in from_pretrained, onnxruntime or openvino)"
        )
    mode_order = {mode: i for i, mode in enumerate(settings.modes)}
    random = settings.weights == "random"  # for Hub models: a package or local folder keeps its own
    cases = [
        Case(
            entry,
            mode,
            label,
            batch,
            size,
            random_weights=random and entry.source == "hub",
            scenario=scenario,
        )
        for entry in entries
        for mode in settings.modes
        if entry.runs_in(mode)
        for scenario in scenarios_for(entry, mode, settings)
        for label in hardware_for_mode(mode, settings, hardware)
        for batch in settings.batch_sizes
        for size in input_sizes(entry, mode, settings)
    ]
    return sorted(
        cases,
        key=lambda c: (
            c.entry.family,
            c.entry.key,
            mode_order[c.mode],
            c.scenario != "forward",
            PREFERENCE.index(base_label(c.hardware)),
            c.hardware,
            c.batch_size,
        ),
    )
