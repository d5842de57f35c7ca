"""The original tools' API, whole: ModelFileVerifier(cache_dir, registry_file, huggingface_token,
...), conversion_config's original keys, `hfmodels verify|convert --cache-dir --model-type --db`,
and the tracking contract in DuckDB (onnx_conversions, model_onnx_registry, the two macros), all
against the local hub server with real conversions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pytest

from pytest_hfmodels.cache.manifest import MANIFEST_FILE
from pytest_hfmodels.cli import main
from pytest_hfmodels.convert.onnx.verify import REGISTRY_FILE, ModelFileVerifier
from pytest_hfmodels.errors import ModelConversionError
from tests.convert.onnx.test_export import model_dir

if TYPE_CHECKING:
    from tests.hubserver import HubServer

pytest_plugins = ("tests.hubserver",)

TOKEN = "hf_GATEDtoken456"

# The original tools' documentation, verbatim: its view's query and its two functions' questions.
ORIGINAL_VIEW_QUERY = (
    "SELECT \n"
    "    m.model_id,\n"
    "    m.model_name,\n"
    "    m.model_type,\n"
    "    CASE \n"
    "        WHEN oc.model_id IS NOT NULL THEN 'available_converted'\n"
    "        ELSE 'unknown'\n"
    "    END as onnx_status,\n"
    "    oc.local_path as onnx_local_path,\n"
    "    oc.conversion_time,\n"
    "    oc.opset_version,\n"
    "    oc.file_size_bytes,\n"
    "    oc.use_count\n"
    "FROM models m\n"
    "LEFT JOIN onnx_conversions oc ON m.model_id = oc.model_id"
)  # its trailing spaces kept


def files_of(key: str) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in model_dir(key).iterdir() if p.is_file() and p.name != MANIFEST_FILE
    }


@pytest.fixture
def repos(hub_env: HubServer) -> HubServer:
    """bert-tiny published with an ONNX file, gpt2-tiny without, a broken model, a gated one."""
    bert = files_of("bert-tiny")
    hub_env.add_repo("org/bert-with-onnx", {**bert, "onnx/model.onnx": b"an onnx file"})
    hub_env.add_repo("org/gpt2-plain", files_of("gpt2-tiny"))
    broken = dict(files_of("gpt2-tiny"))
    broken["model.safetensors"] = b"not safetensors"
    hub_env.add_repo("org/gpt2-broken", broken)
    hub_env.add_repo("org/gpt2-gated", files_of("gpt2-tiny"), access_token=TOKEN)
    return hub_env


def test_cache_dir_holds_the_conversions_and_the_registry(repos: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "onnx_cache"
    verifier = ModelFileVerifier(cache_dir=cache)
    path, converted = verifier.verify_model_for_benchmark("org/gpt2-plain", "model.onnx")
    assert converted and path.is_relative_to(cache) and (path.parent / MANIFEST_FILE).is_file()
    hub_path, from_hub = verifier.verify_model_for_benchmark("org/bert-with-onnx", "onnx/model.onnx")
    assert not from_hub and hub_path.read_bytes() == b"an onnx file" and not hub_path.is_relative_to(cache)
    registry = json.loads((cache / REGISTRY_FILE).read_text())["models"]
    assert registry["org/gpt2-plain:model.onnx"]["source"] == "pytorch_conversion"
    assert registry["org/bert-with-onnx:onnx/model.onnx"]["source"] == "huggingface"
    assert registry["org/gpt2-plain:model.onnx"]["local_path"] == str(path)


def test_huggingface_token_reads_a_gated_repo(repos: HubServer, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"gated|401|403|token"):
        ModelFileVerifier(cache_dir=tmp_path).verify_model_for_benchmark("org/gpt2-gated", "model.onnx")
    verifier = ModelFileVerifier(cache_dir=tmp_path, huggingface_token=TOKEN)
    path, converted = verifier.verify_model_for_benchmark("org/gpt2-gated", "model.onnx")
    assert converted and path.is_file()
    assert TOKEN not in repr(verifier)


def test_original_conversion_config_keys_shape_the_export(repos: HubServer, tmp_path: Path) -> None:
    verifier = ModelFileVerifier(cache_dir=tmp_path)
    config = {
        "model_type": "gpt2",
        "opset_version": 17,
        "input_shapes": {"batch_size": 3, "sequence_length": 11},
        "input_names": ["input_ids", "attention_mask"],
        "output_names": ["logits"],
        "dynamic_axes": {"input_ids": {0: "batch_size", 1: "sequence_length"}, "logits": [0, 1]},
    }
    path, _ = verifier.verify_model_for_benchmark("org/gpt2-plain", "model.onnx", conversion_config=config)
    record = json.loads((path.parent / MANIFEST_FILE).read_text())
    assert record["opset"] == 17 and record["spec"]["outputs"] == ["logits"]
    assert record["export_shape"]["input_ids"] == [3, 11]
    # Validation ran at another shape in every axis, so the axes are proven dynamic.
    assert record["validation_shape"]["input_ids"] == [4, 16]
    import onnx

    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == ["logits"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"input_names": ["input_ids"]}, r"input_names \['input_ids'\] differ from the inputs"),
        ({"output_names": ["hidden"]}, r"output_names \['hidden'\] are not outputs"),
        ({"dynamic_axes": {"input_ids": [0]}}, r"dynamic_axes\['input_ids'\] \[0\]: the 'gpt2' export makes"),
        ({"input_shapes": {"batch": 2}}, "input_shapes must be a mapping of"),
        ({"opset_version": 0}, "opset_version: 0 is not a positive integer"),
        ({"model_type": "bert"}, "model_type 'bert' was asked for, but its config.json says 'gpt2'"),
        ({"quantize": True}, r"unknown keys \['quantize'\]"),
    ],
)
def test_conversion_config_the_export_cannot_honour_is_an_error(
    repos: HubServer, tmp_path: Path, config: dict[str, object], message: str
) -> None:
    verifier = ModelFileVerifier(cache_dir=tmp_path)
    with pytest.raises(ModelConversionError, match=message):
        verifier.verify_model_for_benchmark("org/gpt2-plain", "model.onnx", conversion_config=config)


def test_cli_verify_convert_cache_dir_and_db_keep_the_original_contract(
    repos: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, db = tmp_path / "onnx_cache", tmp_path / "results.duckdb"
    common = ["--convert", "--cache-dir", str(cache), "--db", str(db)]
    assert main(["verify", "org/bert-with-onnx", "--file", "onnx/model.onnx", *common]) == 0
    assert main(["verify", "org/gpt2-plain", "--file", "model.onnx", "--model-type", "gpt2", *common]) == 0
    assert main(["verify", "org/gpt2-broken", "--file", "model.onnx", *common]) == 1
    out = capsys.readouterr().out
    assert "CONVERTED  org/gpt2-plain model.onnx" in out and "stored 1 verification(s)" in out
    assert list((cache / "onnx").iterdir())  # the conversion went where --cache-dir says

    con = duckdb.connect(str(db))
    # A model the database knows of but never saw in ONNX: the fourth status.
    con.execute("INSERT INTO models (model_id, model_name, model_type) VALUES ('org/never', 'never', 'bert')")
    models = ("org/bert-with-onnx", "org/gpt2-plain", "org/gpt2-broken", "org/never")
    status = dict(con.execute("SELECT model_id, onnx_status FROM model_onnx_registry").fetchall())
    assert [status[m] for m in models] == [
        "available_on_hub",
        "available_converted",
        "conversion_failed",
        "unknown",
    ]
    answers = [
        con.execute("SELECT has_converted_onnx(?), get_onnx_status(?)", [m, m]).fetchone() for m in models
    ]
    assert answers == [
        (False, "available_on_hub"),
        (True, "converted"),
        (False, "conversion_failed"),
        (False, "unknown"),
    ]
    # Every attempt is a row of the original columns, the failure with its error.
    attempts = con.execute(
        "SELECT model_id, conversion_success, verification_status, error_message IS NOT NULL, "
        "opset_version, file_size_bytes > 0, use_count, typeof(conversion_time) FROM onnx_conversions "
        "ORDER BY id"
    ).fetchall()
    assert attempts == [
        ("org/gpt2-plain", True, "validated", False, 18, True, 1, "TIMESTAMP"),
        ("org/gpt2-broken", False, "failed", True, None, None, 0, "TIMESTAMP"),
    ]
    # The original view's query, verbatim, runs on it: its columns are all there.
    original = con.execute(ORIGINAL_VIEW_QUERY + " ORDER BY m.model_id").fetchall()
    assert {row[0] for row in original} == set(models)
    con.close()

    # Verified again: the same conversion is counted again, not recorded twice.
    assert main(["verify", "org/gpt2-plain", "--file", "model.onnx", *common]) == 0
    con = duckdb.connect(str(db))
    assert con.execute(
        "SELECT count(*), max(use_count) FROM onnx_conversions WHERE model_id = 'org/gpt2-plain'"
    ).fetchone() == (1, 2)
    con.close()


def test_cli_convert_cache_dir_and_model_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = model_dir("gpt2-tiny")
    cache = tmp_path / "cache"
    args = ["convert", str(folder), "--to", "onnx", "-o", str(tmp_path / "out"), "--cache-dir", str(cache)]
    assert main([*args, "--model-type", "gpt2"]) == 0
    assert list((cache / "onnx").iterdir()) and (tmp_path / "out" / "config.json").is_file()
    assert main([*args, "--model-type", "bert"]) == 1
    assert "model_type 'bert' was asked for, but its config.json says 'gpt2'" in capsys.readouterr().err
