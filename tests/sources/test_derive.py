"""Any Hub id or local folder, no YAML: placed by its config.json and the Hub's pipeline_tag, through
the registry family of its model_type when there is one; the original custom-set format too."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_hfmodels.cache.manifest import MANIFEST_FILE
from pytest_hfmodels.cases.selection import selected_entries
from pytest_hfmodels.errors import RegistryError, SelectionError
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.sources.derive import derive_entry, readable_key
from tests.convert.onnx.test_export import model_dir
from tests.helpers import cpu_settings

if TYPE_CHECKING:
    from tests.hubserver import HubServer

pytest_plugins = ("tests.hubserver", "pytester")


def files_of(key: str) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in model_dir(key).iterdir() if p.is_file() and p.name != MANIFEST_FILE
    }


@pytest.fixture
def hub(hub_env: HubServer) -> HubServer:
    hub_env.add_repo("google-bert/bert-base-uncased", files_of("bert-tiny"), pipeline_tag="fill-mask")
    hub_env.add_repo("someone/tiny-gpt2", files_of("gpt2-tiny"))  # no pipeline_tag: the head says it
    hub_env.add_repo("org/no-config", {"README.md": b"# nothing here"})
    return hub_env


def test_a_hub_id_takes_its_familys_tolerances_and_its_own_task(hub: HubServer) -> None:
    registry = load_registries([])
    bert = derive_entry("google-bert/bert-base-uncased", registry, offline=False)
    family = registry.family_defaults["bert"]
    assert (bert.key, bert.family, bert.task, bert.source) == (
        "google-bert--bert-base-uncased",
        "bert",
        "fill-mask",
        "hub",
    )
    assert bert.tolerances == family.tolerances and bert.id == "google-bert/bert-base-uncased"
    gpt2 = derive_entry("someone/tiny-gpt2", registry, offline=False)
    assert (gpt2.family, gpt2.task, gpt2.architecture, gpt2.modality) == (
        "gpt2",
        "text-generation",
        "GPT2LMHeadModel",
        "text",
    )
    assert gpt2.generates


def test_a_local_folder_is_placed_by_its_config(tmp_path: Path) -> None:
    folder = tmp_path / "my-finetuned-bert"
    shutil.copytree(model_dir("bert-tiny"), folder)
    entry = derive_entry(str(folder), load_registries([]), offline=True)
    assert (entry.key, entry.source, entry.family, entry.id) == (
        "my-finetuned-bert",
        "local",
        "bert",
        str(folder.resolve()),
    )
    # A model_type no family has gets the derived defaults, its task from its head.
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "electra"}))
    other = derive_entry(str(folder), load_registries([]), offline=True)
    assert other.family == "electra" and other.task == "fill-mask" and other.modes is None


def test_a_model_that_cannot_be_placed_is_a_selection_error_naming_what_is_missing(
    hub: HubServer, tmp_path: Path
) -> None:
    registry = load_registries([])
    with pytest.raises(SelectionError, match=r"'org/no-config': the repo has no config.json"):
        derive_entry("org/no-config", registry, offline=False)
    folder = tmp_path / "headless"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "mystery"}')
    with pytest.raises(
        SelectionError, match=r"no architectures in config.json .* 'mystery' is in no registry family"
    ):
        derive_entry(str(folder), registry, offline=True)
    assert readable_key("Qwen/Qwen2.5-0.5B") == "qwen--qwen2.5-0.5b"


def test_hf_model_mixes_registry_keys_and_hub_ids(hub: HubServer) -> None:
    settings = cpu_settings(
        ("from_pretrained",), models=("bert-tiny", "someone/tiny-gpt2"), model_set="small"
    )
    entries = selected_entries(load_registries([]), dataclasses.replace(settings, offline=False))
    assert [e.key for e in entries] == ["bert-tiny", "someone--tiny-gpt2"]
    with pytest.raises(SelectionError, match="no such model key"):
        selected_entries(load_registries([]), dataclasses.replace(settings, models=("not-a-key",)))


def test_the_original_custom_set_format_is_placed_by_config(hub: HubServer, tmp_path: Path) -> None:
    models_file = tmp_path / "my_models.json"
    models_file.write_text(
        json.dumps(
            {
                "bert": {"name": "google-bert/bert-base-uncased", "family": "embedding", "size": "base",
                         "modality": "text"},
                "gpt2": {"name": "someone/tiny-gpt2", "family": "text_generation", "size": "tiny",
                         "modality": "text"},
            }
        )
    )  # fmt: skip
    settings = cpu_settings(("from_pretrained",), model_set="custom", models_file=models_file)
    entries = selected_entries(load_registries([]), dataclasses.replace(settings, offline=False))
    assert [(e.key, e.family, e.task, e.sets) for e in entries] == [
        ("bert", "bert", "fill-mask", ("custom",)),
        ("gpt2", "gpt2", "text-generation", ("custom",)),
    ]
    assert "embedding" in entries[0].description and "size base" in entries[0].description
    models_file.write_text(json.dumps({"x": {"name": "org/no-config", "family": "vision"}}))
    with pytest.raises(RegistryError, match=r"my_models.json.*model 'x'.*cannot place 'org/no-config'"):
        selected_entries(load_registries([]), dataclasses.replace(settings, offline=False))


def test_a_local_folder_runs_in_pytest_and_the_custom_set_lists(
    hub: HubServer, tmp_path: Path, pytester: pytest.Pytester
) -> None:
    folder = tmp_path / "my-finetuned-bert"
    shutil.copytree(model_dir("bert-tiny"), folder)
    result = pytester.runpytest_subprocess(
        f"--hf-model={folder}",
        "--hf-mode=from_pretrained,onnxruntime",
        "--hf-batch-sizes=1",
        "--hf-seq-lengths=8",
        "--hf-verify-only",
        "--hf-no-db",
        "-v",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*my-finetuned-bert-from_pretrained-cpu-s8? PASSED*",
            "*my-finetuned-bert-onnxruntime-cpu-s8? PASSED*",
        ]
    )
    models_file = tmp_path / "my_models.json"
    models_file.write_text(
        json.dumps({"gpt2-emb": {"name": "someone/tiny-gpt2", "family": "text_generation"}})
    )
    listed = pytester.runpytest_subprocess(
        "--hf-list-models", "--hf-set=custom", f"--hf-models-file={models_file}"
    )
    assert listed.ret == 0
    listed.stdout.fnmatch_lines(["*gpt2-emb*gpt2*text-generation*"])
