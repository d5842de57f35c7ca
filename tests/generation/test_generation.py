"""Generation with past key/values: the with-past export, the greedy loops of onnxruntime and OpenVINO
against PyTorch's `generate`, their timing, the cache, and the models that do not generate."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.convert.onnx.with_past import (
    DECODER_ONLY,
    ENCODER_DECODER,
    KIND,
    export_with_past,
    generation_layout,
)
from pytest_hfmodels.errors import (
    CheckFailed,
    GenerationUnsupportedError,
    ModelConversionError,
    NumericalMismatchError,
)
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.registry.model import ModelEntry, Tolerances
from pytest_hfmodels.runners import runner_class
from pytest_hfmodels.runners.generation import (
    GenerationRun,
    OnnxRuntimeGraph,
    greedy_decoder_only,
    greedy_rules,
)
from pytest_hfmodels.sources.resolve import resolve_model_files

pytestmark = pytest.mark.slow  # builds, exports and runs real (tiny) models

CPU = Device(label="cpu", kind="cpu", name="test cpu")
GENERATING = ("gpt2-tiny", "llama-tiny", "qwen2-tiny", "t5-tiny", "whisper-tiny-random")
NEW_TOKENS = 8


def entry_and_dir(key: str) -> tuple[ModelEntry, Path]:
    """A built-in entry and its tiny model, built locally (no Hub file) in the session's cache."""
    entry = next(e for e in load_registries([]).entries if e.key == key)
    return entry, resolve_model_files(entry, default_cache_root(), offline=True).path


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str, str], Any]]:
    """Loaded runners by (model key, mode), one each for the module, sharing one cache root."""
    root = tmp_path_factory.mktemp("generation-cache")
    loaded: dict[tuple[str, str], Any] = {}

    def get(key: str, mode: str) -> Any:
        if (key, mode) not in loaded:
            entry, folder = entry_and_dir(key)
            made = runner_class(mode)(entry, CPU)
            made.cache_root = root  # type: ignore[attr-defined]  # what the session sets from --hf-cache-dir
            made.load(folder)
            loaded[key, mode] = made
        return loaded[key, mode]

    yield get
    for made in loaded.values():
        made.close()


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("mode", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("key", GENERATING)
def test_exported_tokens_equal_pytorch_generate(
    key: str, mode: str, batch: int, runner: Callable[[str, str], Any]
) -> None:
    exported, pytorch = runner(key, mode), runner(key, "from_pretrained")
    inputs = exported.make_generation_inputs(batch)
    reference_inputs = pytorch.make_generation_inputs(batch)
    # The same prompt in both modes: the comparison is of the decoding, not of the inputs.
    assert inputs.tensors.keys() == reference_inputs.tensors.keys()
    for name, value in inputs.tensors.items():
        np.testing.assert_array_equal(value, reference_inputs.tensors[name].numpy())
    assert inputs.decoder_prompt == reference_inputs.decoder_prompt

    run = exported.generate(inputs, NEW_TOKENS)
    expected = pytorch.generate(reference_inputs, NEW_TOKENS)
    assert run.tokens == expected.tokens and run.digest == expected.digest
    assert len(run.tokens) == batch and all(len(row) == NEW_TOKENS for row in run.tokens)
    exported.check_generation(inputs, run)  # the mode's own check agrees
    pytorch.check_generation(reference_inputs, expected)
    assert exported.generation_export.source in ("pytorch_conversion", "cache")
    assert exported.generation_precision == "fp32"  # asked for, and read back where the runtime can tell
    assert len(exported.decode(run)) == batch


def test_decoder_only_batches_are_left_padded(runner: Callable[[str, str], Any]) -> None:
    inputs = runner("gpt2-tiny", "onnxruntime").make_generation_inputs(2)
    mask = inputs.tensors["attention_mask"]
    assert inputs.architecture == DECODER_ONLY
    assert mask.shape == inputs.tensors["input_ids"].shape == (2, inputs.prompt_tokens)
    short = int(np.argmin(mask.sum(axis=1)))  # the sample prompts differ in length
    assert mask[short, 0] == 0 and mask[short, -1] == 1 and mask[1 - short].all()


def test_input_size_gives_exactly_that_many_prompt_tokens(runner: Callable[[str, str], Any]) -> None:
    inputs = runner("llama-tiny", "onnxruntime").make_generation_inputs(2, 6)
    assert inputs.tensors["input_ids"].shape == (2, 6) and inputs.prompt_tokens == 6
    assert inputs.tensors["attention_mask"].all()


def test_encoder_decoders_start_from_generates_own_decoder_prompt(runner: Callable[[str, str], Any]) -> None:
    whisper = runner("whisper-tiny-random", "onnxruntime")
    inputs = whisper.make_generation_inputs(2)
    config = whisper.model.generation_config
    assert inputs.architecture == ENCODER_DECODER
    # Whisper's start of transcript, then (English-only, no timestamps asked for) <|notimestamps|>.
    assert inputs.decoder_prompt == ((config.decoder_start_token_id, config.no_timestamps_token_id),) * 2
    assert inputs.prompt_tokens == 2
    t5 = runner("t5-tiny", "openvino")
    prompt = t5.make_generation_inputs(1).decoder_prompt
    assert prompt == ((t5.model.generation_config.decoder_start_token_id,),)


def test_steps_are_timed_from_the_call(runner: Callable[[str, str], Any]) -> None:
    for mode in ("onnxruntime", "openvino", "from_pretrained"):
        made = runner("qwen2-tiny", mode)
        inputs = made.make_generation_inputs(1)
        start = time.perf_counter()
        run = made.generate(inputs, NEW_TOKENS)
        wall_ms = (time.perf_counter() - start) * 1000.0
        assert len(run.step_ms) == NEW_TOKENS and all(step > 0 for step in run.step_ms), mode
        assert run.total_ms <= wall_ms, mode  # step 0 from the call's start, the others back to back
        assert run.prompt_tokens == inputs.prompt_tokens and run.batch_size == 1
        assert run.decode_tokens_per_s is not None and run.decode_tokens_per_s > 0


def test_digest_is_the_sha256_of_the_token_lists() -> None:
    run = GenerationRun(
        tokens=((1, 2), (3, 4)), step_ms=(1.0, 0.5), prompt_tokens=3, batch_size=2, new_tokens=2
    )
    assert run.digest == hashlib.sha256(b"[[1,2],[3,4]]").hexdigest()
    assert (
        run.digest == hashlib.sha256(json.dumps([[1, 2], [3, 4]], separators=(",", ":")).encode()).hexdigest()
    )
    assert replace(run, tokens=((1, 2), (3, 5))).digest != run.digest


def test_a_different_token_is_a_mismatch_naming_row_and_step(runner: Callable[[str, str], Any]) -> None:
    made = runner("llama-tiny", "onnxruntime")
    inputs = made.make_generation_inputs(2)
    run = made.generate(inputs, NEW_TOKENS)
    made.check_generation(inputs, run)
    rows = [list(row) for row in run.tokens]
    original = rows[1][5]
    rows[1][5] = (original + 1) % 300
    perturbed = replace(run, tokens=tuple(tuple(row) for row in rows))
    with pytest.raises(NumericalMismatchError) as caught:
        made.check_generation(inputs, perturbed)
    message = str(caught.value)
    assert "batch row 1, step 5" in message
    assert f"token {rows[1][5]}" in message and f"gives {original}" in message


def test_a_short_or_out_of_vocabulary_run_fails_the_checks(runner: Callable[[str, str], Any]) -> None:
    pytorch = runner("gpt2-tiny", "from_pretrained")
    inputs = pytorch.make_generation_inputs(1)
    run = pytorch.generate(inputs, 4)
    pytorch.check_generation(inputs, run)
    with pytest.raises(CheckFailed, match="3 new tokens, 4 asked for"):
        pytorch.check_generation(inputs, replace(run, tokens=(run.tokens[0][:3],)))
    with pytest.raises(CheckFailed, match="outside the vocabulary"):
        pytorch.check_generation(inputs, replace(run, tokens=((*run.tokens[0][:3], 10**6),)))
    exported = runner("gpt2-tiny", "onnxruntime")
    with pytest.raises(CheckFailed, match="2 rows of tokens for a batch of 1"):
        exported.check_generation(inputs, replace(run, tokens=run.tokens * 2))


def test_io_binding_and_recomputing_give_the_same_tokens(runner: Callable[[str, str], Any]) -> None:
    made = runner("llama-tiny", "onnxruntime")
    inputs = made.make_generation_inputs(2)
    expected = made.generate(inputs, NEW_TOKENS)
    session = made.generation_graphs["decoder"].session
    rules = greedy_rules(made.model.generation_config)
    export = made.generation_export
    plain = greedy_decoder_only(OnnxRuntimeGraph(session, io_binding=True), inputs, NEW_TOKENS, rules, export)
    recomputed = greedy_decoder_only(
        made.generation_graphs["decoder"], inputs, NEW_TOKENS, rules, export, use_cache=False
    )
    assert plain.tokens == recomputed.tokens == expected.tokens


def test_the_export_is_cached(tmp_path: Path) -> None:
    entry, folder = entry_and_dir("gpt2-tiny")
    first = export_with_past(folder, tmp_path)
    second = export_with_past(folder, tmp_path)
    assert first.source == "pytorch_conversion" and second.source == "cache"
    assert second.seconds == first.seconds > 0  # the build's own time, whoever asks
    assert second.paths == first.paths and first.path.is_relative_to(tmp_path / KIND)
    assert first.layers == 2 and first.kv_heads == 4 and first.head_dim == 8
    assert first.max_abs_diff <= entry.tolerances.atol
    assert len(first.validation_shapes) == 3 and "past 5" in first.validation_shapes[0]
    # A runner on the same cache root takes it from the cache, and says how long its set-up took.
    made = runner_class("onnxruntime")(entry, CPU)
    made.cache_root = tmp_path  # type: ignore[attr-defined]
    made.load(folder)
    try:
        assert made.generation_export is None  # forward cases never pay for it
        made.make_generation_inputs(1)
        assert made.generation_export.source == "cache"
        assert 0 < made.generation_session_s <= made.generation_load_s
    finally:
        made.close()


def test_encoder_decoders_export_two_graphs(runner: Callable[[str, str], Any]) -> None:
    for key, dropped in (("t5-tiny", set()), ("whisper-tiny-random", {"encoder_hidden_states"})):
        made = runner(key, "onnxruntime")
        made.make_generation_inputs(1)
        export = made.generation_export
        assert export.architecture == ENCODER_DECODER and export.encoder_path is not None
        assert export.paths == (export.encoder_path, export.decoder_path)
        assert set(made.generation_graphs) == {"encoder", "decoder"}
        assert not dropped & set(export.graph_inputs["decoder"])  # inputs the decoder does not read


def test_a_validation_beyond_the_tolerances_names_the_output(tmp_path: Path) -> None:
    _, folder = entry_and_dir("gpt2-tiny")
    with pytest.raises(
        ModelConversionError, match=r"differs from PyTorch at batch 1, past 5, 1 new, output '"
    ):
        export_with_past(folder, tmp_path, tolerances=Tolerances(atol=0.0, rtol=0.0))
    assert not list((tmp_path / KIND).glob("gpt2-*/"))  # nothing half-built is left as an entry


def test_models_that_do_not_generate_name_their_model_type(tmp_path: Path) -> None:
    _, llava = entry_and_dir("llava-tiny")
    with pytest.raises(GenerationUnsupportedError, match=r"model_type 'llava' is a multimodal model"):
        export_with_past(llava, tmp_path)
    _, gpt2 = entry_and_dir("gpt2-tiny")
    foreign = tmp_path / "foreign"
    shutil.copytree(gpt2, foreign)
    config = json.loads((foreign / "config.json").read_text())
    for model_type, says in (
        ("bert", r"model_type 'bert' with architecture 'GPT2LMHeadModel' is not its causal language model"),
        ("no-such-model", r"model_type 'no-such-model' is not a causal language model transformers knows"),
    ):
        (foreign / "config.json").write_text(json.dumps({**config, "model_type": model_type}))
        with pytest.raises(GenerationUnsupportedError, match=says):
            export_with_past(foreign, tmp_path)
    with pytest.raises(GenerationUnsupportedError, match=r"model_type 'bart' is an encoder-decoder"):
        generation_layout({"model_type": "bart", "is_encoder_decoder": True})
    with pytest.raises(GenerationUnsupportedError, match="no model_type"):
        generation_layout({})
    assert not (tmp_path / KIND).exists() or not any((tmp_path / KIND).iterdir())


def test_from_pretrained_refuses_a_vision_language_model_by_name() -> None:
    entry, folder = entry_and_dir("llava-tiny")
    made = runner_class("from_pretrained")(entry, CPU)
    made.load(folder)
    try:
        with pytest.raises(GenerationUnsupportedError, match="'llava'"):
            made.make_generation_inputs(1)  # type: ignore[attr-defined]
    finally:
        made.close()


@pytest.mark.parametrize("mode", ["from_pretrained", "onnxruntime"])
def test_more_positions_than_learned_ones_is_refused_by_name(
    mode: str, runner: Callable[[str, str], Any]
) -> None:
    gpt2 = runner("gpt2-tiny", mode)  # n_positions 128
    inputs = gpt2.make_generation_inputs(1, 120)
    with pytest.raises(GenerationUnsupportedError, match=r"'gpt2'.* 136 positions; .* holds 128"):
        gpt2.generate(inputs, 16)
    whisper = runner("whisper-tiny-random", mode)  # max_target_positions 64, a prompt of 2
    with pytest.raises(GenerationUnsupportedError, match=r"'whisper'.* 65 positions; .* holds 64"):
        whisper.generate(whisper.make_generation_inputs(1), 63)
