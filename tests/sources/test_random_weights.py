"""Random-weight models at a real configuration: a registry's `random` entries and Hub models under
--hf-weights random, built from a real config with the family's tiny tokenizer."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_hfmodels.cache.manifest import MANIFEST_FILE
from pytest_hfmodels.errors import ModelSourceError
from pytest_hfmodels.registry.loader import load_registries, load_registry_file
from pytest_hfmodels.registry.model import ModelEntry
from pytest_hfmodels.sources.resolve import resolve_model_files
from pytest_hfmodels.sources.tiny import build_random_model, built_model_dir
from tests.helpers import ONE_SHAPE, dump_rows, read_rows

if TYPE_CHECKING:
    from tests.hubserver import HubServer

pytest_plugins = ("tests.hubserver",)

# A small but real BERT shape whose vocabulary (3000) is far larger than the tiny tokenizer's.
SMALL_BERT = {
    "vocab_size": 3000,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "max_position_embeddings": 128,
}
WORDPIECE = """
      tokenizer:
        kind: wordpiece
        vocab_size: 300
        special_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        roles: {pad_token: "[PAD]", unk_token: "[UNK]", cls_token: "[CLS]", sep_token: "[SEP]",
                mask_token: "[MASK]"}
        template: "[CLS] $A [SEP]"
"""


def registry(config: Mapping[str, object], section: str = "random") -> str:
    return (
        "family: minibert\ntask: fill-mask\nmodality: text\narchitecture: BertForMaskedLM\nmodels:\n"
        f"  minibert-{section}:\n    source: {section}\n    sets: [medium]\n    {section}:\n"
        f"      model_type: bert\n      config: {json.dumps({**config, 'pad_token_id': '$[PAD]'})}\n"
        + WORDPIECE
    )


def entry_of(tmp_path: Path, text: str) -> ModelEntry:
    path = tmp_path / "minibert.yaml"
    path.write_text(text)
    (entry,) = load_registry_file(path)
    return entry


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST_FILE  # the manifest records when it was built
    }


@pytest.mark.slow
def test_a_random_entry_keeps_its_configs_vocabulary_and_the_tokenizer_stays_below_it(tmp_path: Path) -> None:
    import torch
    import transformers

    entry = entry_of(tmp_path, registry(SMALL_BERT))
    assert (entry.source, entry.id, entry.weights) == ("random", "random/minibert-random", "random")
    folder = built_model_dir(entry, tmp_path / "cache")
    assert folder.parent.name == "random"  # the cache's kind folder, beside tiny/ and onnx/

    config = json.loads((folder / "config.json").read_text())
    assert (config["vocab_size"], config["hidden_size"]) == (3000, 64)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert len(tokenizer) < 3000
    ids = tokenizer(["the quick brown fox [MASK] over the lazy dog"], return_tensors="pt")
    assert int(ids["input_ids"].max()) < 3000
    model = transformers.BertForMaskedLM.from_pretrained(folder).eval()
    with torch.inference_mode():
        logits = model(**ids).logits
    assert logits.shape[-1] == 3000 and bool(torch.isfinite(logits).all())


@pytest.mark.slow
def test_a_random_entry_without_a_vocab_size_gets_its_model_types_not_the_tokenizers(tmp_path: Path) -> None:
    shape = {k: v for k, v in SMALL_BERT.items() if k != "vocab_size"}
    random = built_model_dir(entry_of(tmp_path, registry(shape)), tmp_path / "cache")
    tiny = built_model_dir(entry_of(tmp_path, registry(shape, "tiny")), tmp_path / "cache")
    assert json.loads((random / "config.json").read_text())["vocab_size"] == 30522  # BertConfig's
    tiny_vocab = json.loads((tiny / "config.json").read_text())["vocab_size"]
    assert tiny_vocab == len(json.loads((tiny / "tokenizer.json").read_text())["model"]["vocab"])


def test_a_tokenizer_larger_than_the_vocabulary_is_refused_naming_the_model(tmp_path: Path) -> None:
    entry = entry_of(tmp_path, registry({**SMALL_BERT, "vocab_size": 100}))
    with pytest.raises(ModelSourceError, match=r"minibert-random.*more than the config's vocab_size 100"):
        built_model_dir(entry, tmp_path / "cache")


@pytest.mark.slow
def test_building_twice_gives_the_same_files(tmp_path: Path) -> None:
    entry = entry_of(tmp_path, registry(SMALL_BERT))
    assert entry.random is not None
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        build_random_model(entry.architecture, entry.random, out, vocab_from_tokenizer=False)
    assert file_hashes(first) == file_hashes(second)
    assert "model.safetensors" in file_hashes(first)


@pytest.mark.slow
def test_the_bert_base_medium_entry_builds_at_its_real_size(tmp_path: Path) -> None:
    import transformers

    entry = next(e for e in load_registries([]).entries if e.key == "bert-base-random")
    start = time.perf_counter()
    folder = built_model_dir(entry, tmp_path / "cache")
    assert time.perf_counter() - start < 60  # about 5 s on 2 CPU cores
    config = transformers.AutoConfig.from_pretrained(folder)
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (30522, 768, 12)
    model = transformers.BertForMaskedLM.from_pretrained(folder)
    assert 109_000_000 < sum(p.numel() for p in model.parameters()) < 110_000_000  # bert-base: 110M


# -- --hf-weights random: a Hub model's config.json, served by a local Hub

HUB_REPO = "test-org/minibert-base"
HUB_CONFIG = {
    "architectures": ["BertForMaskedLM"],
    "model_type": "bert",
    "torch_dtype": "float16",  # the random model is fp32 whatever the published weights were
    "pad_token_id": 0,
    **SMALL_BERT,
}
SERVED_REGISTRY = (
    "family: served\ntask: fill-mask\nmodality: text\narchitecture: BertForMaskedLM\nmodels:\n"
    f"  served-bert:\n    id: {HUB_REPO}\n    source: hub\n    sets: [small]\n"
    "  served-bert-tiny:\n    source: tiny\n    sets: [small]\n    tiny:\n      model_type: bert\n"
    "      config: {hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 37, "
    'pad_token_id: "$[PAD]"}\n' + WORDPIECE
)


@pytest.fixture
def served(hub_env: HubServer, tmp_path: Path) -> Path:
    """A registry folder whose Hub entry's repo holds a config.json and nothing else."""
    hub_env.add_repo(HUB_REPO, {"config.json": json.dumps(HUB_CONFIG).encode()})
    folder = tmp_path / "regs"
    folder.mkdir()
    (folder / "served.yaml").write_text(SERVED_REGISTRY)
    return folder


@pytest.mark.slow
def test_hf_weights_random_builds_a_hub_model_from_its_served_config_alone(
    served: Path, hub_env: HubServer, tmp_path: Path
) -> None:
    entries = load_registries([served], include_builtin=False).entries
    entry = next(e for e in entries if e.key == "served-bert")
    files = resolve_model_files(
        entry, tmp_path / "cache", False, random_weights=True, registry_entries=entries
    )
    assert {r.path for r in hub_env.requests} == {f"/{HUB_REPO}/resolve/main/config.json"}
    assert files.path.parent.name == "random" and files.model_type == "bert"
    config = json.loads((files.path / "config.json").read_text())
    assert (config["vocab_size"], config["hidden_size"]) == (3000, 64)  # the Hub's, not the donor's
    assert config["dtype"] == "float32"
    manifest = json.loads((files.path / MANIFEST_FILE).read_text())
    assert (manifest["config_of"], manifest["tokenizer_of"]) == (f"{HUB_REPO}@main", "served-bert-tiny")

    asked = len(hub_env.requests)
    offline = resolve_model_files(
        entry, tmp_path / "cache", True, random_weights=True, registry_entries=entries
    )
    assert offline.path == files.path and len(hub_env.requests) == asked  # the HF cache answered


def test_hf_weights_random_needs_a_built_entry_in_the_family_to_take_a_tokenizer_from(
    served: Path, tmp_path: Path
) -> None:
    entries = [e for e in load_registries([served], include_builtin=False).entries if e.source == "hub"]
    with pytest.raises(ModelSourceError, match=r"'served-bert' .*--hf-weights random.*which has none"):
        resolve_model_files(
            entries[0], tmp_path / "cache", False, random_weights=True, registry_entries=entries
        )


@pytest.mark.slow
def test_hf_weights_random_runs_the_hub_entry_and_its_rows_say_random_weights(
    served: Path, hub_env: HubServer, pytester: pytest.Pytester
) -> None:
    rows_file, plugin = dump_rows(pytester)
    args = (f"--hf-registry={served}", "--hf-model", "served-bert", "--hf-mode", "from_pretrained")
    result = pytester.runpytest(*args, "--hf-weights", "random", *ONE_SHAPE, "--hf-verify-only", *plugin)
    result.assert_outcomes(passed=1)
    (row,) = read_rows(rows_file)
    assert (row["model_id"], row["source"], row["weights"]) == (HUB_REPO, "hub", "random")
    assert not any(r.path.endswith(".safetensors") for r in hub_env.requests)


# google/vit-base-patch16-224's config.json (its ImageNet label names shortened to numbers).
VIT_BASE = {
    "architectures": ["ViTForImageClassification"],
    "model_type": "vit",
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "qkv_bias": True,
    "id2label": {str(i): f"class {i}" for i in range(1000)},
    "label2id": {f"class {i}": i for i in range(1000)},
}


@pytest.mark.slow
def test_hf_weights_random_gives_a_vision_model_images_of_its_configs_size(
    hub_env: HubServer, pytester: pytest.Pytester
) -> None:
    """The built-in vit-base-patch16-224 entry borrows vit-base-random's processor (224-pixel
    images), not vit-tiny's (30 pixels), which the 224-pixel position embeddings would refuse."""
    hub_env.add_repo("google/vit-base-patch16-224", {"config.json": json.dumps(VIT_BASE).encode()})
    rows_file, plugin = dump_rows(pytester)
    args = ("--hf-model", "vit-base-patch16-224", "--hf-mode", "from_pretrained", "--hf-weights", "random")
    result = pytester.runpytest(*args, *ONE_SHAPE, "--hf-verify-only", *plugin)
    result.assert_outcomes(passed=1)
    (row,) = read_rows(rows_file)
    assert (row["weights"], row["parameters"]) == ("random", 86_567_656)  # ViT-B/16's 86.6M
