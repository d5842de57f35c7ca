"""The generated suite end to end on real tiny models and the real MiniLM, as users run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.errors import CheckFailed
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.runners import runner_class
from pytest_hfmodels.samples import SAMPLE_IMAGE_QUESTION, SAMPLE_VIDEO_LABELS, sample_image
from tests.helpers import (
    BUILTIN_FAMILIES,
    DATA,
    ONE_SHAPE,
    dump_rows,
    read_rows,
    torchvision_import_error,
)

pytestmark = pytest.mark.slow  # builds and runs real models


def test_small_set_passes_on_every_family_and_minilm(pytester: pytest.Pytester) -> None:
    rows_file, plugin = dump_rows(pytester)
    # Forward cases only: generate cases are measured in test_generate_is_token_exact_in_every_runtime.
    result = pytester.runpytest("--hf-set", "small", "--hf-offline", "--hf-scenario=forward", *plugin)
    # Every mode by default, and the default sweep: batch 1, 4, 8; 32 and 128 tokens where a mode
    # sets the length (not a pipeline); 1 s and 5 s of audio; images at the processor's size.
    # xclip has no pipeline case; sam's pipeline needs a torchvision that imports (not here).
    torchvision_fails = torchvision_import_error() is not None
    skipped = 3 if torchvision_fails else 0
    result.assert_outcomes(passed=297 - skipped, skipped=skipped)
    rows = read_rows(rows_file)
    assert len(rows) == 297
    assert {r["mode"] for r in rows} == {"pipeline", "from_pretrained", "onnxruntime", "openvino"}
    assert {r["measurement"]["batch_size"] for r in rows if r["status"] == "pass"} == {1, 4, 8}
    for row in rows:  # the length the tokenizer really made, where the case set one
        if row["case_id"].endswith(("-s32", "-s128")):
            assert row["measurement"]["sequence_length"] == int(row["case_id"].rsplit("-s", 1)[1])
    assert {r["measurement"]["audio_seconds"] for r in rows} == {None, 1.0, 5.0}
    assert {r["family"] for r in rows} == BUILTIN_FAMILIES
    assert all(r["hardware"] == "cpu" for r in rows)
    not_passed = {r["case_id"]: r["status"] for r in rows if r["status"] != "pass"}
    sam_pipeline = {f"sam-tiny-pipeline-cpu{b}": "skip" for b in ("", "-b4", "-b8")}
    assert not_passed == (sam_pipeline if skipped else {})
    minilm = next(r for r in rows if r["case_id"] == "all-minilm-l6-v2-pipeline-cpu")
    assert minilm["model_type"] == "bert"  # read from config.json, not guessed from the name
    assert minilm["parameters"] == 22_713_216
    loaded = [r for r in rows if r["measurement"]["load_time_s"] is not None]
    assert loaded and all(r["measurement"]["load_time_s"] > 0 for r in loaded)
    result.stdout.fnmatch_lines(["hfmodels: 297 results stored in run 1 of *results.duckdb"])

    import duckdb  # the default database file, queried as a user would

    with duckdb.connect(str(pytester.path / ".hfmodels" / "results.duckdb"), read_only=True) as con:
        matrix = con.sql("select model_key, mode, hardware, status from compatibility_matrix").fetchall()
        assert sorted(matrix) == sorted({(r["model_key"], r["mode"], "cpu", r["status"]) for r in rows})
        p50 = con.execute(
            "select latency_p50_ms from performance_results p join models m using (model_id) "
            "where m.model_id = ? and p.mode = 'pipeline'",
            ["sentence-transformers/all-MiniLM-L6-v2"],
        ).fetchone()
        assert p50 is not None and p50[0] == pytest.approx(minilm["measurement"]["latency_p50_ms"])
        lengths = con.execute(
            "select audio_seconds from performance_results where model_id = 'tiny/wav2vec2-tiny' "
            "and mode = 'from_pretrained' and batch_size = 1 order by 1"
        ).fetchall()
        assert lengths == [(1.0,), (5.0,)]  # two cases, two keys: compare keeps them apart
        onnx = con.execute("select has_converted_onnx(?), get_onnx_status(?)", ["tiny/bert-tiny"] * 2)
        assert onnx.fetchone() == (True, "converted")  # the onnxruntime and openvino cases converted it


def test_sam_runs_in_every_mode_torchvision_allows(pytester: pytest.Pytester) -> None:
    """SAM's pipeline post-processes with torchvision: where it does not import, that case skips
    naming it and its import error, and the other modes still run."""
    rows_file, plugin = dump_rows(pytester)
    modes = "pipeline,from_pretrained,onnxruntime,openvino"
    result = pytester.runpytest("--hf-family", "sam", "--hf-mode", modes, *ONE_SHAPE, *plugin)
    rows = {r["mode"]: r for r in read_rows(rows_file)}
    assert sorted(rows) == sorted(modes.split(","))
    assert {rows[m]["status"] for m in ("from_pretrained", "onnxruntime", "openvino")} == {"pass"}
    error = torchvision_import_error()
    if error is None:
        result.assert_outcomes(passed=4)
        return
    result.assert_outcomes(passed=3, skipped=1)
    reason = (
        "mode 'pipeline' of task 'mask-generation' needs the Python package 'torchvision', "
        f"which does not import: {error}"
    )
    assert (rows["pipeline"]["status"], rows["pipeline"]["error_message"]) == ("skip", reason)


def test_team_registry_runs_every_mode_without_code(pytester: pytest.Pytester) -> None:
    """A family with no export spec of its own: the registry alone gives all four modes."""
    result = pytester.runpytest(
        f"--hf-registry={DATA / 'registries'}", "--hf-family", "electra", *ONE_SHAPE, "-v"
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*electra-tiny-pipeline-cpu* PASSED*",
            "*electra-tiny-from_pretrained-cpu-s32* PASSED*",
            "*electra-tiny-onnxruntime-cpu-s32* PASSED*",
            "*electra-tiny-openvino-cpu-s32* PASSED*",
        ]
    )


@pytest.mark.parametrize("dist", [["-p", "no:xdist"], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_same_outcomes_with_and_without_xdist(pytester: pytest.Pytester, dist: list[str]) -> None:
    rows_file, plugin = dump_rows(pytester)
    torch_modes = "--hf-mode=pipeline,from_pretrained"  # where cases run is the point, not the runtime
    result = pytester.runpytest_subprocess("--hf-family", "gpt2,vit", torch_modes, *ONE_SHAPE, *dist, *plugin)
    result.assert_outcomes(passed=5)
    rows = read_rows(rows_file)
    assert sorted(r["case_id"] for r in rows) == [
        "gpt2-tiny-from_pretrained-cpu-s32",
        "gpt2-tiny-from_pretrained-cpu-s32-generate",  # it generates: a generate case too
        "gpt2-tiny-pipeline-cpu",
        "vit-tiny-from_pretrained-cpu",
        "vit-tiny-pipeline-cpu",
    ]
    workers = {r["worker"] for r in rows}
    assert workers == ({"main"} if "no:xdist" in dist else workers - {"main"})


def test_broken_weights_fail_with_a_classified_cause(nan_bert_dir: Path, pytester: pytest.Pytester) -> None:
    """A real model whose weights hold NaN: the from_pretrained checks catch it."""
    broken = nan_bert_dir
    registries = pytester.mkdir("regs")
    (registries / "nan.yaml").write_text(
        "family: nanbert\ntask: fill-mask\nmodality: text\narchitecture: BertForMaskedLM\n"
        f"models:\n  nan-bert:\n    source: local\n    id: {broken}\n    sets: [small]\n"
    )
    rows_file, plugin = dump_rows(pytester)
    result = pytester.runpytest(
        f"--hf-registry={registries}",
        "--hf-family",
        "nanbert",
        "--hf-mode",
        "from_pretrained",
        *ONE_SHAPE,
        *plugin,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]output_check[]] nan-bert-from_pretrained-cpu-s32*non-finite values*"])
    (row,) = read_rows(rows_file)
    assert row["status"] == "fail" and row["error_class"] == "output_check"
    assert "non-finite" in row["error_message"] and row["suggested_fix"]


def test_own_tests_use_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_team="""
        import json

        def test_config_matches_case(hf_case, hf_model_path):
            config = json.loads((hf_model_path / "config.json").read_text())
            assert config["model_type"] == hf_case.entry.tiny.model_type

        def test_runner_output(hf_case, hf_runner, hf_hardware):
            inputs = hf_runner.make_inputs(batch_size=2)
            outputs = hf_runner.infer(inputs)
            hf_runner.check(inputs, outputs)
            assert hf_hardware.get(hf_case.hardware) is not None
        """
    )
    result = pytester.runpytest(
        "test_team.py",
        "--hf-model",
        "distilbert-tiny,t5-tiny",
        "--hf-mode=pipeline,from_pretrained",
        *ONE_SHAPE,
        "-v",
    )
    # Per case for the test asking for hf_case: t5's generate case too (2 + 3); the runner's test
    # also asks for hf_case, so it runs per case as well.
    result.assert_outcomes(passed=10)


def test_video_model_scores_each_video_against_each_label(tiny_model_dirs: dict[str, Path]) -> None:
    (entry,) = load_registries([]).select(models=["xclip-tiny"])
    runner = runner_class("from_pretrained")(entry, Device(label="cpu", kind="cpu", name="cpu"))
    runner.load(tiny_model_dirs["xclip-tiny"])
    inputs = runner.make_inputs(batch_size=2)
    # Two videos of the config's 4 frames each, and the candidate labels.
    assert tuple(inputs["pixel_values"].shape) == (2, 4, 3, 32, 32)
    assert inputs["input_ids"].shape[0] == len(SAMPLE_VIDEO_LABELS)
    frames = inputs["pixel_values"][0]
    assert not frames[0].equal(frames[1])  # a video's frames differ
    outputs = runner.infer(inputs)
    runner.check(inputs, outputs)
    assert outputs["logits_per_video"].shape == (2, len(SAMPLE_VIDEO_LABELS))
    # Scores seen from the texts that are not the videos' scores transposed (the texts' rows
    # swapped) fail the check.
    broken = dict(outputs, logits_per_text=outputs["logits_per_text"][::-1].copy())
    with pytest.raises(CheckFailed, match="logits_per_text is not these scores transposed"):
        runner.check(inputs, broken)
    runner.close()


def test_llava_next_processor_and_model_agree_on_anyres_tiles(tiny_model_dirs: dict[str, Path]) -> None:
    """The image tokens the processor writes are the features the model packs, whatever the tiling."""
    import torch
    import transformers

    path = tiny_model_dirs["llava-next-tiny"]
    processor = transformers.AutoProcessor.from_pretrained(path)
    model = transformers.LlavaNextForConditionalGeneration.from_pretrained(path).eval()
    # Square, wide and tall: each fits a different pinpoint, so each has its own token count.
    images = [sample_image(32, 32), sample_image(40, 90, seed=1), sample_image(90, 33, seed=2)]
    prompts = [f"{processor.image_token} {SAMPLE_IMAGE_QUESTION}"] * len(images)
    encoded = processor(images=images, text=prompts, return_tensors="pt", padding=True)
    counts = (encoded["input_ids"] == processor.image_token_id).sum(dim=1).tolist()
    # 32x32 fits 32x64: a base view of 4x4 patches, then the two tiles' 4x8 unpadded to the
    # image's 4x4 plus a newline a row; the CLS token dropped.
    assert counts[0] == 16 + 16 + 4
    assert len(set(counts)) == len(images)
    with torch.inference_mode():  # the model refuses image tokens its features do not fill
        logits = model(**encoded).logits
    assert tuple(logits.shape[:2]) == tuple(encoded["input_ids"].shape)
