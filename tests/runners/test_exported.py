"""The onnxruntime and openvino modes: runners on real models, and the generated suite through pytester."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import onnxruntime
import pytest

from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.convert.onnx.cached import BUILD_LOG
from pytest_hfmodels.errors import CheckFailed, HardwareUnavailableError, NumericalMismatchError
from pytest_hfmodels.modes import MODES
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.registry.model import ModelEntry, Tolerances
from pytest_hfmodels.runners import runner_class
from pytest_hfmodels.runners.openvino import openvino_device
from pytest_hfmodels.samples import (
    SAMPLE_LABELS,
    SAMPLE_POINT_PROMPTS,
    SAMPLE_SOUND_LABELS,
    SAMPLE_VIDEO_LABELS,
    InputShape,
)
from pytest_hfmodels.sources.resolve import resolve_model_files
from tests.helpers import ONE_SHAPE, dump_rows, read_rows

pytestmark = pytest.mark.slow  # builds and runs real models

CPU = Device(label="cpu", kind="cpu", name="test cpu")


def entry_and_dir(key: str) -> tuple[ModelEntry, Path]:
    entry = next(e for e in load_registries([]).entries if e.key == key)
    return entry, resolve_model_files(entry, default_cache_root(), offline=True).path


@pytest.mark.parametrize("mode", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("key", ["t5-tiny", "whisper-tiny-random"])
def test_runner_matches_pytorch(mode: str, key: str, tmp_path: Path) -> None:
    entry, folder = entry_and_dir(key)
    runner = runner_class(mode)(entry, CPU)
    runner.cache_root = tmp_path  # type: ignore[attr-defined]  # what the session sets from --hf-cache-dir
    runner.load(folder)
    try:
        onnx = runner.onnx  # type: ignore[attr-defined]
        assert onnx.path.is_relative_to(tmp_path / "onnx") and onnx.source == "pytorch_conversion"
        assert runner.precision == "fp32"  # type: ignore[attr-defined]  # asked for, and read back
        inputs = runner.make_inputs(batch_size=2)
        outputs = runner.infer(inputs)
        assert set(outputs) == {"logits", "encoder_last_hidden_state"}
        assert outputs["logits"].shape[0] == 2
        runner.check(inputs, outputs)
    finally:
        runner.close()


#: key -> (the input holding the images, sounds or videos, the output scoring them against every text,
#: the texts)
TEXT_WITH = {
    "clip-tiny": ("pixel_values", "logits_per_image", SAMPLE_LABELS),
    "clap-tiny": ("input_features", "logits_per_audio", SAMPLE_SOUND_LABELS),
    "xclip-tiny": ("pixel_values", "logits_per_video", SAMPLE_VIDEO_LABELS),
    "llava-tiny": ("pixel_values", None, None),  # one prompt per image: logits per prompt token
    "llava-next-tiny": ("pixel_values", None, None),  # the same, each image's tiles in pixel_values
}


@pytest.mark.parametrize("mode", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("key", sorted(TEXT_WITH))
def test_text_with_image_or_sound_runner_matches_pytorch(mode: str, key: str, tmp_path: Path) -> None:
    """The case's batch is of images, sounds or videos; every output is checked against PyTorch."""
    entry, folder = entry_and_dir(key)
    runner = runner_class(mode)(entry, CPU)
    runner.cache_root = tmp_path  # type: ignore[attr-defined]
    runner.load(folder)
    try:
        other, scores, texts = TEXT_WITH[key]
        inputs = runner.make_inputs(batch_size=3)
        assert inputs[other].shape[0] == 3
        outputs = runner.infer(inputs)
        if texts is None:
            assert inputs["input_ids"].shape[0] == 3
            assert outputs["logits"].shape[:2] == inputs["input_ids"].shape
        else:  # the labels the PyTorch modes score the images or sounds against
            assert inputs["input_ids"].shape[0] == len(texts)
            assert outputs[scores].shape == (3, len(texts)) and outputs["logits_per_text"].shape == (
                len(texts),
                3,
            )
        runner.check(inputs, outputs)
        assert_every_output_is_checked(runner, mode, inputs, outputs)
    finally:
        runner.close()


@pytest.mark.parametrize("mode", ["onnxruntime", "openvino"])
def test_sam_export_serves_other_batches_and_prompts(mode: str, tmp_path: Path) -> None:
    """Exported at one image with one prompt of one point, validated at 2 images with 3 prompts of 4
    points: the case's batch and the runners' prompts are a third shape, and another is a fourth."""
    entry, folder = entry_and_dir("sam-tiny")
    runner = runner_class(mode)(entry, CPU)
    runner.cache_root = tmp_path  # type: ignore[attr-defined]
    runner.load(folder)
    try:
        onnx = runner.onnx  # type: ignore[attr-defined]
        assert dict(onnx.export_shape) == {"pixel_values": (1, 3, 64, 64), "input_points": (1, 1, 1, 2)}
        assert dict(onnx.validation_shape) == {"pixel_values": (2, 3, 64, 64), "input_points": (2, 3, 4, 2)}
        assert onnx.max_abs_diff <= entry.tolerances.atol
        inputs = runner.make_inputs(batch_size=3)
        assert inputs["input_points"].shape == (3, SAMPLE_POINT_PROMPTS, 1, 2)
        outputs = runner.infer(inputs)
        # 3 candidate masks a prompt, at 4x the encoder's 8x8 grid (the registry's config).
        assert outputs["iou_scores"].shape == (3, SAMPLE_POINT_PROMPTS, 3)
        assert outputs["pred_masks"].shape == (3, SAMPLE_POINT_PROMPTS, 3, 32, 32)
        runner.check(inputs, outputs)  # finite, and every output as PyTorch gives it
        reference = runner.reference  # type: ignore[attr-defined]
        other = reference.inputs(InputShape(4, point_prompts=5, points_per_prompt=2))
        again = runner.infer(other)
        assert again["pred_masks"].shape == (4, 5, 3, 32, 32)
        runner.check(other, again)
        assert_every_output_is_checked(runner, mode, inputs, outputs)
    finally:
        runner.close()


def test_second_runner_reuses_the_conversion(tmp_path: Path) -> None:
    entry, folder = entry_and_dir("bert-tiny")
    sources = []
    for mode in ("onnxruntime", "openvino"):
        runner = runner_class(mode)(entry, CPU)
        runner.cache_root = tmp_path  # type: ignore[attr-defined]
        runner.load(folder)
        sources.append(runner.onnx.source)  # type: ignore[attr-defined]
        runner.close()
    assert sources == ["pytorch_conversion", "cache"]
    assert len((tmp_path / "onnx" / BUILD_LOG).read_text().splitlines()) == 1


def test_openvino_refuses_an_input_left_out(tmp_path: Path) -> None:
    """OpenVINO would run a missing input as an empty tensor; the runner names it instead."""
    entry, folder = entry_and_dir("whisper-tiny-random")
    runner = runner_class("openvino")(entry, CPU)
    runner.cache_root = tmp_path  # type: ignore[attr-defined]
    runner.load(folder)
    inputs = runner.make_inputs()
    del inputs["decoder_attention_mask"]
    with pytest.raises(CheckFailed, match=r"model input \['decoder_attention_mask'\] is not fed"):
        runner.infer(inputs)
    runner.close()


def test_check_uses_the_entry_tolerance(tmp_path: Path) -> None:
    """Converted and validated at the family's tolerance; a zero tolerance then sees real fp differences."""
    entry, folder = entry_and_dir("gpt2-tiny")
    runner = runner_class("onnxruntime")(entry, CPU)
    runner.cache_root = tmp_path  # type: ignore[attr-defined]
    runner.load(folder)
    inputs = runner.make_inputs(2)
    outputs = runner.infer(inputs)
    runner.check(inputs, outputs)
    runner.entry = dataclasses.replace(entry, tolerances=Tolerances(0.0, 0.0))  # type: ignore[attr-defined]
    with pytest.raises(
        NumericalMismatchError, match=r"onnxruntime on cpu \(fp32\) vs PyTorch fp32: max abs diff"
    ):
        runner.check(inputs, outputs)
    runner.close()


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="this onnxruntime has CUDA"
)
def test_onnxruntime_without_the_device_provider_is_unavailable(tmp_path: Path) -> None:
    entry, folder = entry_and_dir("vit-tiny")
    runner = runner_class("onnxruntime")(entry, Device(label="cuda", kind="cuda", name="absent"))
    runner.cache_root = tmp_path  # type: ignore[attr-defined]
    with pytest.raises(HardwareUnavailableError, match="needs CUDAExecutionProvider"):
        runner.load(folder)


def test_openvino_device_names() -> None:
    assert openvino_device("cpu", "cpu", 0) == "CPU"
    assert openvino_device("ov-gpu", "openvino", 0) == "GPU"
    assert openvino_device("ov-gpu1", "openvino", 1) == "GPU.1"
    assert openvino_device("ov-npu", "openvino", 0) == "NPU"
    assert MODES["openvino"].hardware == ("cpu", "ov-gpu", "ov-npu")


def test_generated_suite_runs_both_modes(pytester: pytest.Pytester) -> None:
    rows_file, plugin = dump_rows(pytester)
    result = pytester.runpytest(
        "--hf-family", "bert", "--hf-mode", "onnxruntime,openvino", *ONE_SHAPE, "-v", *plugin
    )
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(
        ["*all-minilm-l6-v2-onnxruntime-cpu-s32* PASSED*", "*bert-tiny-openvino-cpu* PASSED*"]
    )
    rows = read_rows(rows_file)
    assert sorted({r["mode"] for r in rows}) == ["onnxruntime", "openvino"]
    assert all(r["status"] == "pass" for r in rows) and len(rows) == 8


def test_xdist_workers_share_one_conversion_per_model(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers run the two modes of a model side by side; each model is converted once."""
    cache = pytester.path / "fresh-cache"
    monkeypatch.setenv("HFMODELS_CACHE", str(cache))
    result = pytester.runpytest_subprocess(
        "--hf-model",
        "bert-tiny,gpt2-tiny",
        "--hf-mode",
        "onnxruntime,openvino",
        "--hf-scenario=forward",
        *ONE_SHAPE,
        "-n",
        "2",
    )
    result.assert_outcomes(passed=4)
    builds = [json.loads(line) for line in (cache / "onnx" / BUILD_LOG).read_text().splitlines()]
    assert sorted(b["entry"].split("-")[0] for b in builds) == ["bert", "gpt2"]


def test_runs_record_their_conversions_and_uses(pytester: pytest.Pytester) -> None:
    import duckdb

    args = ("--hf-model", "bert-tiny", "--hf-mode", "onnxruntime,openvino", "--hf-verify-only", *ONE_SHAPE)
    pytester.runpytest(*args).assert_outcomes(passed=2)
    second = pytester.runpytest(*args)
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(["hfmodels: 1 ONNX conversions recorded in onnx_conversions"])
    with duckdb.connect(str(pytester.path / ".hfmodels" / "results.duckdb"), read_only=True) as con:
        row = con.execute(
            "select exporter, opset_version, use_count, sha256, file_size_bytes from onnx_conversions "
            "where model_id = ?",
            ["tiny/bert-tiny"],
        ).fetchone()
        status = con.execute(
            "select has_converted_onnx(?), get_onnx_status(?)", ["tiny/bert-tiny"] * 2
        ).fetchone()
    assert row is not None
    exporter, opset, use_count, sha256, size = row
    assert (exporter, opset, use_count) == ("legacy", 18, 4)  # two runs, two modes each
    assert len(sha256) == 64 and size > 0
    assert status == (True, "converted")


def assert_every_output_is_checked(runner: Any, mode: str, inputs: Any, outputs: dict[str, Any]) -> None:
    """A shift of 1e-2 in any one output, not only the first, fails the check against PyTorch."""
    for name in outputs:
        shifted = {**outputs, name: outputs[name] + 1e-2}
        with pytest.raises(NumericalMismatchError, match=rf"{mode} on cpu \(fp32\) vs PyTorch fp32"):
            runner.check(inputs, shifted)
