"""PyTorch -> ONNX on real tiny models and the real MiniLM: export, strict validation, caching, the CLI."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import pytest

from pytest_hfmodels.cache.manifest import MANIFEST_FILE, file_sha256
from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.convert.onnx.cached import BUILD_LOG, export_onnx
from pytest_hfmodels.convert.onnx.export import run_onnxruntime
from pytest_hfmodels.convert.onnx.specs import SPECS, ExportSpec, spec_for
from pytest_hfmodels.convert.onnx.verify import ModelFileVerifier
from pytest_hfmodels.errors import ModelConversionError
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.registry.model import Tolerances
from pytest_hfmodels.samples import CONTRASTIVE, InputShape
from pytest_hfmodels.sources.resolve import resolve_model_files
from tests.helpers import DATA

pytestmark = pytest.mark.slow  # builds and runs real models

if TYPE_CHECKING:
    from tests.hubserver import HubServer

pytest_plugins = ("tests.hubserver",)

#: model key -> (graph inputs, graph outputs) the family's spec gives
EXPECTED = {
    "bert-tiny": (["input_ids", "attention_mask", "token_type_ids"], ["logits"]),
    "distilbert-tiny": (["input_ids", "attention_mask"], ["logits"]),
    "roberta-tiny": (["input_ids", "attention_mask"], ["logits"]),
    "all-minilm-l6-v2": (["input_ids", "attention_mask", "token_type_ids"], ["last_hidden_state"]),
    "gpt2-tiny": (["input_ids", "attention_mask"], ["logits"]),
    "t5-tiny": (
        ["input_ids", "attention_mask", "decoder_input_ids"],
        ["logits", "encoder_last_hidden_state"],
    ),
    "vit-tiny": (["pixel_values"], ["logits"]),
    # Text with images or sounds: contrastive scores both ways and their embeddings; LLaVA's logits.
    "clip-tiny": (
        ["input_ids", "attention_mask", "pixel_values"],
        ["logits_per_image", "logits_per_text", "image_embeds", "text_embeds"],
    ),
    "clap-tiny": (
        ["input_ids", "attention_mask", "input_features"],
        ["logits_per_audio", "logits_per_text", "audio_embeds", "text_embeds"],
    ),
    "xclip-tiny": (
        ["input_ids", "attention_mask", "pixel_values"],
        ["logits_per_video", "logits_per_text", "video_embeds", "text_embeds"],
    ),
    "llava-tiny": (["input_ids", "attention_mask", "pixel_values"], ["logits"]),
    # LLaVA-NeXT: every image's tiles (a base view and two tiles at 32x32), and the images' sizes.
    "llava-next-tiny": (["input_ids", "attention_mask", "pixel_values", "image_sizes"], ["logits"]),
    # Images with point prompts: per prompt, candidate masks and their predicted IoU.
    "sam-tiny": (["pixel_values", "input_points"], ["iou_scores", "pred_masks"]),
    "whisper-tiny-random": (
        ["input_features", "decoder_input_ids", "decoder_attention_mask"],
        ["logits", "encoder_last_hidden_state"],
    ),
    # Families without a spec of their own: derived from what their preprocessor gives.
    "llama-tiny": (["input_ids", "attention_mask"], ["logits"]),
    "qwen2-tiny": (["input_ids", "attention_mask"], ["logits"]),
    "wav2vec2-tiny": (["input_values", "attention_mask"], ["logits"]),
    "detr-tiny": (
        ["pixel_mask", "pixel_values"],  # the image processor's order
        ["logits", "pred_boxes", "last_hidden_state", "encoder_last_hidden_state"],
    ),
}


def model_dir(key: str, registries: tuple[Path, ...] = ()) -> Path:
    entry = next(e for e in load_registries(registries).entries if e.key == key)
    return resolve_model_files(entry, default_cache_root(), offline=True).path


def conversions(root: Path) -> list[Path]:
    folder = root / "onnx"
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def build_log(root: Path) -> list[dict[str, object]]:
    path = root / "onnx" / BUILD_LOG
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_family_exports_and_validates_at_another_shape(key: str, tmp_path: Path) -> None:
    folder = model_dir(key)
    spec = spec_for(folder)
    export = export_onnx(folder, tmp_path)
    inputs, outputs = EXPECTED[key]
    # A contrastive model's texts are a batch of their own: one more text than images or sounds.
    texts = {"input_ids", "attention_mask"} if spec.modality in CONTRASTIVE else set()
    assert (export.exporter, export.opset, export.source) == ("legacy", 18, "pytorch_conversion")
    assert list(export.validation_shape) == inputs
    for name in inputs:  # batch 1 -> 2 (texts 2 -> 3), and every dynamic length differs too
        first = 2 if name in texts else 1
        assert (export.export_shape[name][0], export.validation_shape[name][0]) == (first, first + 1)
        for axis in spec.dynamic_axes[name]:
            assert export.export_shape[name][axis] != export.validation_shape[name][axis]
    if "input_ids" in inputs:
        lengths = (export.export_shape["input_ids"][1], export.validation_shape["input_ids"][1])
        assert lengths == (spec.export_shape.length, spec.validate_shape.length)
    if "decoder_input_ids" in inputs:
        assert export.export_shape["decoder_input_ids"][1] != export.validation_shape["decoder_input_ids"][1]
    assert export.max_abs_diff <= 1e-4
    assert export.sha256 == file_sha256(export.path) and export.file_size >= export.path.stat().st_size

    graph = onnx.load(str(export.path)).graph
    assert [i.name for i in graph.input] == inputs and [o.name for o in graph.output] == outputs
    for graph_input in graph.input:
        batch_axis = "text_batch" if graph_input.name in texts else "batch"
        assert graph_input.type.tensor_type.shape.dim[0].dim_param == batch_axis
    record = json.loads((export.path.parent / MANIFEST_FILE).read_text())
    assert record["source"] == "pytorch_conversion"
    assert record["files"]["model.onnx"]["sha256"] == export.sha256
    assert record["max_abs_diff"] == export.max_abs_diff and record["spec"]["name"] == spec.name


def test_file_runs_at_a_third_shape_in_onnxruntime(tmp_path: Path) -> None:
    """The dynamic axes hold beyond the two shapes the conversion used."""
    from pytest_hfmodels.convert.onnx.reference import load_reference
    from pytest_hfmodels.convert.onnx.specs import read_config

    folder = model_dir("gpt2-tiny")
    export = export_onnx(folder, tmp_path)
    reference = load_reference(folder, SPECS["gpt2"], read_config(folder))
    inputs = reference.inputs(InputShape(3, 21))
    got = run_onnxruntime(export.path, inputs)
    assert got["logits"].shape[:2] == (3, 21)
    np.testing.assert_allclose(got["logits"], reference.run(inputs)["logits"], atol=1e-4, rtol=1e-4)


def copy_with_config(source: Path, folder: Path, **changes: object) -> Path:
    """A copy of a model folder whose config.json has `changes`."""
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


@pytest.mark.parametrize(
    ("key", "scores", "texts"),
    [
        ("clip-tiny", "logits_per_image", ("a photo of a cat",)),
        ("clap-tiny", "logits_per_audio", ("a dog barking", "a car horn", "rain", "wind", "a bell")),
        ("xclip-tiny", "logits_per_video", ("playing sports", "cooking", "a bird flying", "a dog", "rain")),
    ],
)
def test_contrastive_export_keeps_images_and_texts_apart(
    key: str, scores: str, texts: tuple[str, ...], tmp_path: Path
) -> None:
    """n images (sounds) and m texts give [n, m] scores, for counts neither export nor validation used."""
    from pytest_hfmodels.convert.onnx.reference import load_reference
    from pytest_hfmodels.convert.onnx.specs import read_config

    folder = model_dir(key)
    export = export_onnx(folder, tmp_path)
    dims = {
        o.name: [d.dim_param for d in o.type.tensor_type.shape.dim]
        for o in onnx.load(str(export.path)).graph.output
    }
    assert dims[scores] == ["batch", "text_batch"] and dims["logits_per_text"] == ["text_batch", "batch"]
    reference = load_reference(folder, spec_for(folder), read_config(folder))
    inputs = reference.inputs(InputShape(4, 10, texts=texts))
    got = run_onnxruntime(export.path, inputs)
    assert got[scores].shape == (4, len(texts)) and got["logits_per_text"].shape == (len(texts), 4)
    for name, want in reference.run(inputs).items():
        np.testing.assert_allclose(got[name], want, atol=1e-4, rtol=1e-4)


def test_llava_prompts_without_a_processor_are_the_processors(tmp_path: Path) -> None:
    """Where the folder has no processor, the tokenizer gets the prompt with its image token expanded."""
    import transformers

    from pytest_hfmodels.convert.onnx.specs import load_preprocessors

    source = model_dir("llava-tiny")
    bare = tmp_path / "no-processor"
    shutil.copytree(source, bare)
    (bare / "processor_config.json").unlink()
    with_processor = load_preprocessors(source, with_processor=True)
    without = load_preprocessors(bare, with_processor=True)
    assert with_processor.processor is not None and without.processor is None
    config = transformers.AutoConfig.from_pretrained(source)
    for shape in (SPECS["llava"].validate_shape, InputShape(3, text="Describe the picture.")):
        made = SPECS["llava"].sample_inputs(with_processor, config, shape)
        fallback = SPECS["llava"].sample_inputs(without, config, shape)
        assert list(fallback) == list(made) and all(np.array_equal(fallback[n], made[n]) for n in made)
        image_tokens = (made["input_ids"] == config.image_token_id).sum(axis=1)
        assert image_tokens.tolist() == [config.image_seq_length] * shape.batch
    with pytest.raises(ModelConversionError, match="a text length of 16 cannot hold an image's 16 tokens"):
        SPECS["llava"].sample_inputs(with_processor, config, InputShape(1, 16))


def test_llava_wrapper_that_does_not_reproduce_the_model_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wrapper is exported and checked against, so it must give the model's own logits."""
    from pytest_hfmodels.convert.onnx import wrappers as onnx_wrappers

    llava = onnx_wrappers.WRAPPERS["llava"]

    def last_layer(model: Any, spec: ExportSpec) -> Any:
        # The model's logits were computed from layer -2 before the wrapper is made; the wrapper
        # then reads the vision tower's last layer.
        model.config.vision_feature_layer = -1
        return llava(model, spec)

    monkeypatch.setitem(onnx_wrappers.WRAPPERS, "llava", last_layer)
    with pytest.raises(
        ModelConversionError,
        match=r"export wrapper 'llava' does not reproduce LlavaForConditionalGeneration: max abs",
    ):
        export_onnx(model_dir("llava-tiny"), tmp_path)
    assert conversions(tmp_path) == []


def test_llava_next_export_serves_its_image_size_at_any_batch(tmp_path: Path) -> None:
    """Batch and prompt length stay dynamic; an image of another size gives non-finite logits in the
    graph and is refused by name in PyTorch; a prompt too short for the image's tokens is refused."""
    from pytest_hfmodels.convert.onnx.reference import load_reference
    from pytest_hfmodels.convert.onnx.specs import read_config

    folder = model_dir("llava-next-tiny")
    export = export_onnx(folder, tmp_path)
    reference = load_reference(folder, spec_for(folder), read_config(folder))
    inputs = reference.inputs(InputShape(3, 61))
    assert (
        inputs["pixel_values"].shape == (3, 3, 3, 32, 32) and inputs["image_sizes"].tolist() == [[32, 32]] * 3
    )
    image_tokens = (inputs["input_ids"] == reference.model.config.image_token_id).sum(axis=1)
    assert image_tokens.tolist() == [36] * 3  # base view 4x4, tiles unpadded to 4x4 plus a newline per row
    got = run_onnxruntime(export.path, inputs)
    assert got["logits"].shape[:2] == (3, 61)
    np.testing.assert_allclose(got["logits"], reference.run(inputs)["logits"], atol=1e-4, rtol=1e-4)

    other = {**inputs, "image_sizes": np.asarray([[32, 32], [32, 64], [32, 32]], dtype=np.int64)}
    finite = np.isfinite(run_onnxruntime(export.path, other)["logits"]).all(axis=(1, 2))
    assert finite.tolist() == [True, False, True]
    with pytest.raises(
        ModelConversionError, match=r"serves 32x32 images only, not image_sizes \[\[32, 32\], \[32, 64\]"
    ):
        reference.run(other)
    with pytest.raises(
        ModelConversionError,
        match=r"length of 36 cannot hold an image's 36 tokens \(the processor's count for a 32x32 image\)",
    ):
        reference.spec.sample_inputs(reference.preprocessors, reference.model.config, InputShape(1, 36))


def test_text_with_image_model_without_a_spec_says_so(tmp_path: Path) -> None:
    folder = copy_with_config(model_dir("clip-tiny"), tmp_path / "clip-like", model_type="clip-like")
    with pytest.raises(
        ModelConversionError,
        match=r"clip-like: model_type 'clip-like' takes text with images or sounds in one call; .*none",
    ) as raised:
        spec_for(folder)
    assert "\n" not in str(raised.value)


def test_fused_clap_is_refused_by_name(tmp_path: Path) -> None:
    config = json.loads((model_dir("clap-tiny") / "config.json").read_text())
    audio = {**config["audio_config"], "enable_fusion": True}
    folder = copy_with_config(model_dir("clap-tiny"), tmp_path / "fused", audio_config=audio)
    with pytest.raises(ModelConversionError, match=r"fused/config.json: audio_config.enable_fusion is true"):
        spec_for(folder)


def test_second_call_comes_from_the_cache(tmp_path: Path) -> None:
    folder = model_dir("distilbert-tiny")
    first = export_onnx(folder, tmp_path)
    second = export_onnx(folder, tmp_path)
    assert (first.source, second.source, second.status) == ("pytorch_conversion", "cache", "cached")
    assert second.path == first.path and second.sha256 == first.sha256
    assert len(build_log(tmp_path)) == 1 and len(conversions(tmp_path)) == 1
    other = export_onnx(folder, tmp_path, opset=17)  # the opset is part of the key
    assert other.path != first.path and other.opset == 17


def test_unreadable_record_is_converted_again(tmp_path: Path) -> None:
    folder = model_dir("distilbert-tiny")
    first = export_onnx(folder, tmp_path, exporter="legacy")
    (first.path.parent / MANIFEST_FILE).write_text("{ not json")
    again = export_onnx(folder, tmp_path, exporter="legacy")
    assert again.source == "pytorch_conversion" and again.path == first.path
    assert len(build_log(tmp_path)) == 2 and len(conversions(tmp_path)) == 1


def test_dynamo_exporter(tmp_path: Path) -> None:
    export = export_onnx(model_dir("bert-tiny"), tmp_path, exporter="dynamo")
    assert export.exporter == "dynamo" and export.max_abs_diff <= 1e-4
    graph = onnx.load(str(export.path)).graph
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", "sequence"]


def test_fallback_exporter_when_the_preferred_one_fails(tmp_path: Path) -> None:
    """torch's dynamo exporter cannot decompose T5's attention; the legacy one takes over, on record."""
    spec = dataclasses.replace(SPECS["t5"], exporter="dynamo")
    export = export_onnx(model_dir("t5-tiny"), tmp_path, spec)
    assert export.exporter == "legacy"
    (failure,) = json.loads((export.path.parent / MANIFEST_FILE).read_text())["failed_attempts"]
    assert failure.startswith("dynamo exporter failed:")


def test_axis_left_out_of_the_spec_fails_validation_and_caches_nothing(tmp_path: Path) -> None:
    batch_only = {name: {0: "batch"} for name in SPECS["bert"].inputs}
    spec = dataclasses.replace(SPECS["bert"], dynamic_axes=batch_only)
    with pytest.raises(
        ModelConversionError, match=r"does not run in onnxruntime at the validation shape \(input_ids 2x13"
    ):
        export_onnx(model_dir("bert-tiny"), tmp_path, spec, exporter="legacy")
    assert conversions(tmp_path) == [] and build_log(tmp_path) == []
    assert not [p for p in (tmp_path / "onnx").iterdir() if p.name.endswith(".tmp")]


def test_zero_tolerance_fails_with_the_differences_and_caches_nothing(tmp_path: Path) -> None:
    """Real float differences between onnxruntime and PyTorch (~1e-7) exceed a tolerance of 0."""
    with pytest.raises(
        ModelConversionError, match=r"differs from PyTorch .* max abs diff [1-9][\d.e-]+, max rel diff"
    ):
        export_onnx(model_dir("roberta-tiny"), tmp_path, exporter="legacy", tolerances=Tolerances(0.0, 0.0))
    assert conversions(tmp_path) == [] and build_log(tmp_path) == []


def test_family_without_a_spec_gets_a_derived_one(tmp_path: Path) -> None:
    folder = model_dir("electra-tiny", (DATA / "registries",))
    spec = spec_for(folder)
    assert spec.name == "derived-electra" and spec.inputs[:2] == ("input_ids", "attention_mask")
    export = export_onnx(folder, tmp_path)
    assert export.spec_name == "derived-electra" and export.validation_shape["input_ids"] == (2, 13)


def test_derived_spec_without_a_preprocessor_names_what_is_missing(tmp_path: Path) -> None:
    source = model_dir("electra-tiny", (DATA / "registries",))
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(source / name, bare / name)
    with pytest.raises(ModelConversionError, match=r"no export spec for model_type 'electra'.*no tokenizer"):
        export_onnx(bare, tmp_path / "cache")


def test_spec_comes_from_config_not_from_the_folder_name(tmp_path: Path) -> None:
    misleading = tmp_path / "gpt2-looking-name"
    shutil.copytree(model_dir("vit-tiny"), misleading)
    assert spec_for(misleading) is SPECS["vit"]


WORKER = """
import json, sys, time
from pathlib import Path
import onnxruntime, torch, transformers  # imported before the start line, so the race is the export
from pytest_hfmodels.convert.onnx.cached import export_onnx
Path(sys.argv[3]).touch()
while not Path(sys.argv[4]).exists():
    time.sleep(0.01)
export = export_onnx(sys.argv[1], sys.argv[2], exporter="legacy")
print(json.dumps({"source": export.source, "sha256": export.sha256, "path": str(export.path)}))
"""


def test_four_processes_converting_at_once_build_once(tmp_path: Path) -> None:
    folder, root = model_dir("gpt2-tiny"), tmp_path / "cache"
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(folder), str(root), str(tmp_path / f"ready{i}"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    deadline = time.monotonic() + 300
    while not all((tmp_path / f"ready{i}").exists() for i in range(4)):
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
        time.sleep(0.05)
    go.touch()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert len(build_log(root)) == 1 and len(conversions(root)) == 1
    assert sorted(r["source"] for r in results) == ["cache"] * 3 + ["pytorch_conversion"]
    path = Path(results[0]["path"])
    assert {r["sha256"] for r in results} == {file_sha256(path)} and {r["path"] for r in results} == {
        str(path)
    }
    assert onnx.checker.check_model(str(path)) is None


def test_convert_cli_copies_the_file_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_hfmodels.cli import convert_cmd

    parser = argparse.ArgumentParser()
    convert_cmd.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "convert",
            str(model_dir("vit-tiny")),
            "--to",
            "onnx",
            "-o",
            str(tmp_path / "out"),
            "--exporter",
            "legacy",
            "--opset",
            "18",
        ]
    )
    assert args.func(args) == 0
    assert gc.isenabled()  # off while converting only: a process running the command goes on collecting
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'out' / 'model.onnx'}" in out and "exporter legacy, opset 18" in out
    assert (
        "validated in onnxruntime against PyTorch at pixel_values 2x3x30x30 and at the export shape: "
        "max abs diff" in out
    )
    record = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text())
    assert record["files"]["model.onnx"]["sha256"] == file_sha256(tmp_path / "out" / "model.onnx")
    # The folder loads as a model: its config and processor beside the graph, which runs on what
    # the processor makes.
    import numpy as np
    import onnxruntime
    import transformers
    from PIL import Image

    out_dir = tmp_path / "out"
    assert transformers.AutoConfig.from_pretrained(out_dir).model_type == "vit"
    processor = transformers.AutoImageProcessor.from_pretrained(out_dir)
    pixels = processor(images=Image.new("RGB", (40, 40)), return_tensors="np")["pixel_values"]
    session = onnxruntime.InferenceSession(str(out_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"pixel_values": pixels.astype(np.float32)})
    assert logits.shape[0] == 1 and not list(out_dir.glob("*.safetensors"))

    # A folder that is not there is a usage error, found while the arguments are parsed.
    with pytest.raises(SystemExit) as usage:
        parser.parse_args(
            ["convert", str(tmp_path / "nothing-here"), "--to", "onnx", "-o", str(tmp_path / "x")]
        )
    assert usage.value.code == 2
    assert "nothing-here': no such folder" in capsys.readouterr().err


def test_verifier_converts_a_hub_repo_without_onnx(hub_env: HubServer) -> None:
    folder = model_dir("gpt2-tiny")
    hub_env.add_repo("org/tiny-gpt2", {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})
    verifier = ModelFileVerifier()
    path, converted = verifier.verify_model_for_benchmark(
        "org/tiny-gpt2", "onnx/model.onnx", model_type="gpt2", conversion_config={"exporter": "legacy"}
    )
    assert converted and path.name == "model.onnx" and path.is_file()
    record = json.loads((path.parent / MANIFEST_FILE).read_text())
    assert record["model_id"] == "org/tiny-gpt2" and record["exporter"] == "legacy"
    # Served from the cache the second time: this call converted nothing.
    again, converted_again = verifier.verify_model_for_benchmark(
        "org/tiny-gpt2", "onnx/model.onnx", model_type="gpt2", conversion_config={"exporter": "legacy"}
    )
    assert again == path and not converted_again
    with pytest.raises(
        ModelConversionError, match=r"model_type 'bert' was asked for, but its config\.json says 'gpt2'"
    ):
        verifier.verify_model_for_benchmark("org/tiny-gpt2", "model.onnx", model_type="bert")


def test_spec_describes_itself_as_json() -> None:
    spec: ExportSpec = SPECS["whisper"]
    data = json.loads(json.dumps(spec.as_json()))
    assert data["inputs"][-1] == "decoder_attention_mask" and data["forward_kwargs"] == {"use_cache": False}
    assert spec.fallback == "dynamo"
    # Fields added later appear only when set: the specs made before them keep their JSON and cache keys.
    assert "wrapper" not in data and "texts" not in data["export_shape"]
    assert "point_prompts" not in data["export_shape"] and "points_per_prompt" not in data["validate_shape"]
    assert SPECS["llava"].as_json()["wrapper"] == "llava"
    assert InputShape(2, texts=("a", "b")).as_json()["texts"] == ("a", "b")
