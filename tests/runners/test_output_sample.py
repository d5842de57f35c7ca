"""describe_outputs: what a forward case's first input gave, described from each mode's real outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.registry.model import ModelEntry
from pytest_hfmodels.runners import runner_class
from pytest_hfmodels.runners.output_sample import MAX_CHARS, describe_outputs, shorten
from pytest_hfmodels.samples import SAMPLE_LABELS, SAMPLE_PROMPT
from pytest_hfmodels.sources.resolve import resolve_model_files

CPU = Device(label="cpu", kind="cpu", name="test cpu")


def entry_and_dir(key: str) -> tuple[ModelEntry, Path]:
    entry = next(e for e in load_registries([]).entries if e.key == key)
    return entry, resolve_model_files(entry, default_cache_root(), offline=True).path


def sample(mode: str, key: str, batch: int = 1, cache_root: Path | None = None) -> tuple[Any, str | None]:
    """Load `key` in `mode`, run one batch, describe it; returns the runner's entry and the sample."""
    entry, folder = entry_and_dir(key)
    runner = runner_class(mode)(entry, CPU)
    if cache_root is not None:
        runner.cache_root = cache_root  # type: ignore[attr-defined]  # what --hf-cache-dir sets
    runner.load(folder)
    try:
        inputs = runner.make_inputs(batch_size=batch)
        return runner, describe_outputs(runner, inputs, runner.infer(inputs))
    finally:
        runner.close()


def test_shorten_keeps_one_line_of_at_most_max_chars() -> None:
    assert shorten("a\n b\t c") == "a b c"
    long = shorten("word " * 100)
    assert len(long) == MAX_CHARS and long.endswith("…")


class Unexpected:
    """A runner whose outputs are of no kind the describer knows."""

    mode = "from_pretrained"
    model = None


@pytest.mark.parametrize("outputs", [None, {"logits": "not an array"}, {"other": [1, 2, 3]}, object()])
def test_anything_unexpected_gives_none(outputs: object) -> None:
    assert describe_outputs(Unexpected(), {}, outputs) is None


@pytest.mark.slow
class TestRealModels:
    """Tiny models with random weights: the samples name what they said, whatever it is."""

    def test_pipeline_fill_mask_names_the_top_tokens(self) -> None:
        _, text = sample("pipeline", "bert-tiny")
        assert text is not None and text.startswith("mask: ") and text.count(",") == 2

    def test_pipeline_text_generation_quotes_the_prompt_and_what_followed(self) -> None:
        _, text = sample("pipeline", "gpt2-tiny")
        assert text is not None and text.startswith(f'"{SAMPLE_PROMPT}" -> ')

    def test_pipeline_image_classification_gives_labels_of_the_config(self) -> None:
        _, text = sample("pipeline", "vit-tiny")
        labels = load_label_names("vit-tiny")
        assert text is not None
        named = [part.rsplit(" ", 1)[0] for part in text.split(", ")]
        assert len(named) == 3 and set(named) <= labels

    def test_pipeline_sentence_embeddings_give_the_cosine_of_two_sentences(self) -> None:
        _, text = sample("pipeline", "all-minilm-l6-v2", batch=2)
        assert text is not None and text.startswith("384-d embedding") and "cosine of the first two" in text

    def test_from_pretrained_detector_counts_boxes(self) -> None:
        _, text = sample("from_pretrained", "detr-tiny")
        assert text is not None and " queries find an object; best: " in text

    def test_from_pretrained_ctc_model_transcribes_with_its_tokenizer(self) -> None:
        _, text = sample("from_pretrained", "wav2vec2-tiny")
        assert text is not None and text.startswith('transcript: "')

    def test_from_pretrained_sam_gives_its_masks_and_best_iou(self) -> None:
        _, text = sample("from_pretrained", "sam-tiny")
        assert text is not None and text.startswith("2 prompts x 3 masks, best IoU ")

    @pytest.mark.parametrize("mode", ["onnxruntime", "openvino"])
    def test_exported_modes_say_what_pytorch_says(self, mode: str, tmp_path: Path) -> None:
        """The exported model answers as its PyTorch original: the same sample, read from numpy arrays."""
        _, exported = sample(mode, "clip-tiny", cache_root=tmp_path)
        _, original = sample("from_pretrained", "clip-tiny")
        assert exported == original
        assert exported is not None and all(label in exported for label in SAMPLE_LABELS)


def load_label_names(key: str) -> set[str]:
    import json

    _, folder = entry_and_dir(key)
    config = json.loads((folder / "config.json").read_text())
    return set(config["id2label"].values())


def test_shorten_drops_the_halves_of_characters_a_byte_tokenizer_decodes() -> None:
    assert shorten("z v \ufffd\ufffdR") == "z v R"
