"""The plugin as users run it, through pytester: options, ids, usage errors, skips."""

from __future__ import annotations

import pytest

from tests.helpers import DATA, ONE_SHAPE

#: every mode by default, in the modes' order, per model; text lengths where a mode sets them
SMALL_TINY_IDS = [
    case
    for key in ("all-minilm-l6-v2", "bert-tiny", "distilbert-tiny", "roberta-tiny")
    for case in (
        f"{key}-pipeline-cpu",
        f"{key}-from_pretrained-cpu-s32",
        f"{key}-onnxruntime-cpu-s32",
        f"{key}-openvino-cpu-s32",
    )
]


def collected_ids(result: pytest.RunResult) -> list[str]:
    return [line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_model[" in line]


def test_list_models_prints_the_registries_and_exits_0(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--hf-list-models")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["key*family*task*source*sets*id", "bert-tiny*bert*fill-mask*tiny*small*"])
    assert "openai/whisper-tiny" in result.stdout.str()


def test_family_selection_gives_ids_model_mode_hardware(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--hf-family", "bert", "--cpu-only", *ONE_SHAPE, "--collect-only", "-q")
    assert result.ret == 0
    assert collected_ids(result) == SMALL_TINY_IDS


def test_model_and_mode_options_accept_comma_lists_and_repeats(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "--hf-model",
        "bert-tiny,gpt2-tiny",
        "--hf-model",
        "vit-tiny",
        "--hf-mode",
        "from_pretrained",
        *ONE_SHAPE,
        "--collect-only",
        "-q",
    )
    assert collected_ids(result) == [
        "bert-tiny-from_pretrained-cpu-s32",
        "gpt2-tiny-from_pretrained-cpu-s32",
        "gpt2-tiny-from_pretrained-cpu-s32-generate",  # gpt2 generates: measured per token too
        "vit-tiny-from_pretrained-cpu",  # an image comes at the size the model's processor makes
    ]


def test_key_set_selects_the_real_hub_models(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "--hf-set", "key", "--hf-mode", "pipeline", *ONE_SHAPE, "--collect-only", "-q"
    )
    ids = collected_ids(result)
    assert "bert-base-uncased-pipeline-cpu" in ids and "whisper-tiny-pipeline-cpu-1s" in ids
    assert not any("tiny-pipeline" in i and i.startswith(("bert-tiny", "gpt2-tiny")) for i in ids)


def test_medium_set_selects_the_random_weight_models(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "--hf-set",
        "medium",
        "--hf-family",
        "bert,vit",
        "--hf-mode",
        "from_pretrained",
        *ONE_SHAPE,
        "--collect-only",
        "-q",
    )
    assert collected_ids(result) == [
        "bert-base-random-from_pretrained-cpu-s32",
        "vit-base-random-from_pretrained-cpu",
    ]


def test_ini_twins_set_the_defaults(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        f"[pytest]\nhf_families = gpt2\nhf_modes = pipeline\nhf_batch_sizes = 1\n"
        f"hf_registry_dirs = {DATA / 'registries'}\n"
    )
    pytester.makepyfile(test_own="def test_uses_case(hf_case):\n    assert hf_case.mode == 'pipeline'\n")
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_uses_case?gpt2-tiny-pipeline-cpu? PASSED*"])


def test_keyword_selection_works_on_ids(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--hf-model", "bert-tiny", "-k", "from_pretrained", "--collect-only", "-q")
    assert "bert-tiny-from_pretrained-cpu" in result.stdout.str()
    assert "bert-tiny-pipeline-cpu" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [f"--hf-registry={DATA / 'broken'}", "--hf-family", "broken"],
            "bad.yaml:9: model 'broken-tiny': field 'colour'",
        ),
        (["--hf-family", "nope"], "--hf-family 'nope': no such family"),
        (["--hf-model", "nope"], "--hf-model 'nope': no such model key"),
        (["--hf-family", "bert", "--hf-mode", "telepathy"], "--hf-mode: unknown mode 'telepathy'"),
        (["--hf-hardware", "tpu"], "unknown device 'tpu'"),
        (["--cpu-only", "--all-hardware"], "exclude each other"),
        (["--hf-family", "bert", "--hf-weights", "trained"], "--hf-weights: invalid choice: 'trained'"),
        (["--hf-family", "bert", "-o", "hf_weights=trained"], "hf_weights: 'trained' is not one of"),
    ],
)
def test_bad_input_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_absent_device_skips_naming_it(pytester: pytest.Pytester) -> None:
    # mps exists only on Apple silicon; this suite runs on Linux.
    result = pytester.runpytest(
        "--hf-model",
        "bert-tiny",
        "--hf-mode=pipeline,from_pretrained",
        "--hf-hardware",
        "cpu,mps",
        *ONE_SHAPE,
        "-rs",
    )
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*device 'mps' is not present on this machine*"])


def test_hub_model_offline_and_not_cached_is_skipped(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--hf-model", "bert-base-uncased", "--hf-offline", *ONE_SHAPE, "-rs")
    result.assert_outcomes(skipped=4)  # every mode
    result.stdout.fnmatch_lines(["*bert-base-uncased*offline and not in the Hugging Face cache*"])


def test_report_header_shows_detected_hardware(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--hf-family", "gpt2", "--collect-only")
    result.stdout.fnmatch_lines(["hfmodels hardware:", "  cpu: *cores*"])


def test_explicit_paths_keep_the_users_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_plain():\n    pass\n")
    result = pytester.runpytest("test_mine.py", "--hf-family", "bert")
    result.assert_outcomes(passed=1)


def test_custom_set_from_the_original_tools_file_format(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".json",
        my_models='{"my-bert": {"name": "google-bert/bert-base-cased", "family": "bert", "size": "base",'
        ' "modality": "text"}, "my-vit": {"name": "google/vit-base-patch16-384", "family": "vit"}}',
    )
    result = pytester.runpytest(
        "--hf-set", "custom", "--hf-models-file", "my_models.json", *ONE_SHAPE, "--collect-only", "-q"
    )
    assert collected_ids(result) == [
        "my-bert-pipeline-cpu",
        "my-bert-from_pretrained-cpu-s32",
        "my-bert-onnxruntime-cpu-s32",
        "my-bert-openvino-cpu-s32",
        "my-vit-pipeline-cpu",
        "my-vit-from_pretrained-cpu",
        "my-vit-onnxruntime-cpu",
        "my-vit-openvino-cpu",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            # A family no registry has is the original tools' kind (embedding...): placed by the
            # model's config, which offline and uncached cannot be read.
            '{"m": {"name": "a/b", "family": "nope"}}',
            "model 'm': cannot place 'a/b'",
        ),
        ('{"m": {"name": "a/b", "family": "bert", "colour": 1}}', "model 'm': field 'colour': unknown field"),
        ("[1, 2]", "expected {"),
    ],
)
def test_bad_custom_set_is_a_usage_error(pytester: pytest.Pytester, content: str, message: str) -> None:
    pytester.makefile(".json", custom=content)
    result = pytester.runpytest("--hf-set", "custom", "--hf-models-file", "custom.json", "--hf-offline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "custom.json" in result.stderr.str() and message in result.stderr.str()


def test_custom_set_needs_its_file(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--hf-set", "custom")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--hf-set custom needs --hf-models-file" in result.stderr.str()


def test_thread_budget_shares_the_cpus_between_workers() -> None:
    from pytest_hfmodels.runners.threads import thread_budget

    assert thread_budget(None, workers=1, cpus=16) is None  # alone: the runtime's own default
    assert thread_budget(None, workers=4, cpus=16) == 4
    assert thread_budget(None, workers=3, cpus=2) == 1  # never zero
    assert thread_budget(6, workers=4, cpus=16) == 6  # --hf-threads wins


def test_threads_option_must_be_one_positive_integer(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--hf-family", "bert", "--hf-threads", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--hf-threads: '0' is not a positive integer" in result.stderr.str()
