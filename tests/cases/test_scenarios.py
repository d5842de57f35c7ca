"""Scenarios: forward (one call) everywhere, generate (greedy decoding timed per token) where the
model writes tokens one after another and the mode can decode step by step."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pytest_hfmodels.cases.defaults import DEFAULT_NEW_TOKENS
from pytest_hfmodels.cases.expand import expand
from pytest_hfmodels.cases.settings import build_settings
from pytest_hfmodels.errors import OptionError, SelectionError
from pytest_hfmodels.modes import MODES
from pytest_hfmodels.registry.loader import load_registries
from tests.helpers import CPU_ONLY, cpu_settings

DECODING = ("from_pretrained", "onnxruntime", "openvino")
KEYS = ("bert-tiny", "gpt2-tiny", "t5-tiny", "whisper-tiny-random", "wav2vec2-tiny")


def case_ids(settings: Any) -> list[str]:
    return [case.id for case in expand(load_registries([]).select(models=KEYS), settings, CPU_ONLY)]


def test_by_default_generating_models_get_both_scenarios_in_the_modes_that_decode() -> None:
    ids = case_ids(cpu_settings(tuple(MODES), seq_lengths=(8,), audio_seconds=(1,)))
    generate = sorted(i for i in ids if i.endswith("-generate"))
    assert generate == sorted(
        [
            *(f"{key}-{mode}-cpu-s8-generate" for key in ("gpt2-tiny", "t5-tiny") for mode in DECODING),
            "whisper-tiny-random-from_pretrained-cpu-1s-generate",
            # The exported Whisper encoder takes 30 s of features: no audio length to sweep.
            "whisper-tiny-random-onnxruntime-cpu-generate",
            "whisper-tiny-random-openvino-cpu-generate",
        ]
    )
    # Every generating model has a generate case in each decoding mode, none in the pipeline mode
    # (which generates inside one call it times as a whole); BERT and the CTC model wav2vec2 none.
    for key in ("gpt2-tiny", "t5-tiny", "whisper-tiny-random"):
        for mode in DECODING:
            assert any(i.startswith(f"{key}-{mode}-cpu") and i.endswith("-generate") for i in ids), (
                key,
                mode,
            )
        assert not any(i.startswith(f"{key}-pipeline") and i.endswith("-generate") for i in ids)
    assert not any(i.startswith(("bert-tiny", "wav2vec2-tiny")) and i.endswith("-generate") for i in ids)
    # The forward cases are all still there.
    assert {i.removesuffix("-generate") for i in generate} <= set(ids)


def test_asking_for_one_scenario_narrows_every_model_to_it() -> None:
    settings = cpu_settings(("from_pretrained",), seq_lengths=(8,), audio_seconds=(1,))
    generate_only = case_ids(dataclasses.replace(settings, scenarios=("generate",)))
    assert generate_only == [
        "gpt2-tiny-from_pretrained-cpu-s8-generate",
        "t5-tiny-from_pretrained-cpu-s8-generate",
        "whisper-tiny-random-from_pretrained-cpu-1s-generate",
    ]
    forward_only = case_ids(dataclasses.replace(settings, scenarios=("forward",)))
    assert not any(i.endswith("-generate") for i in forward_only) and len(forward_only) == len(KEYS)


def test_generate_for_models_that_cannot_generate_is_a_selection_error() -> None:
    entries = load_registries([]).select(models=("bert-tiny", "gpt2-tiny"))
    settings = cpu_settings(("pipeline",), scenarios=("generate",))
    with pytest.raises(
        SelectionError, match=r"--hf-scenario generate: no selected model .* --hf-mode pipeline"
    ):
        expand(entries, settings, CPU_ONLY)


def options(**given: Any) -> Any:
    def getoption(name: str) -> Any:
        return given.get(name)

    def getini(name: str) -> Any:
        return [] if name in ("hf_families", "hf_models", "hf_registry_dirs") else ""

    return getoption, getini


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"hf_scenario": ["forward,decode"]},
            "--hf-scenario: unknown scenario 'decode' (known: forward, generate)",
        ),
        ({"hf_new_tokens": "0"}, "--hf-new-tokens: '0' is not a positive integer"),
        ({"hf_new_tokens": "8,16"}, "--hf-new-tokens: (8, 16) is not one positive integer"),
    ],
)
def test_bad_scenario_options_name_the_option(given: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(OptionError) as error:
        build_settings(*options(**given), tmp_path, MODES)
    assert str(error.value) == message


def test_scenario_options_are_read(tmp_path: Path) -> None:
    settings = build_settings(*options(hf_scenario=["generate"], hf_new_tokens="64"), tmp_path, MODES)
    assert settings.scenarios == ("generate",) and settings.new_tokens == 64 and settings.suite_requested
    default = build_settings(*options(), tmp_path, MODES)
    assert default.scenarios == () and default.new_tokens == DEFAULT_NEW_TOKENS
