"""A team's test runs at its own grain: once per model when it asks for a model's folder or ONNX
file, per model x mode x device when it asks for a runner, per case only when it asks for the case."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)

TEAM_TESTS = """
def test_path(hf_model_path):
    assert (hf_model_path / "config.json").is_file()

def test_onnx(hf_onnx_path):
    assert hf_onnx_path.suffix == ".onnx" and hf_onnx_path.stat().st_size > 0

def test_runner(hf_runner):
    assert hf_runner.mode in ("from_pretrained", "onnxruntime")

def test_case(hf_case):
    assert hf_case.batch_size in (1, 4)
"""


def test_team_tests_run_once_per_what_they_ask_for(pytester: pytest.Pytester) -> None:
    tests = pytester.makepyfile(test_team=TEAM_TESTS)
    result = pytester.runpytest(
        str(tests),
        "--hf-model=bert-tiny",
        "--hf-mode=from_pretrained,onnxruntime",
        "--hf-batch-sizes=1,4",
        "--hf-seq-lengths=8,16",
        "--hf-no-db",
        "-v",
    )
    result.assert_outcomes(passed=1 + 1 + 2 + 8)
    result.stdout.fnmatch_lines_random(
        [
            "*test_path?bert-tiny? PASSED*",
            "*test_onnx?bert-tiny? PASSED*",
            "*test_runner?bert-tiny-from_pretrained-cpu? PASSED*",
            "*test_runner?bert-tiny-onnxruntime-cpu? PASSED*",
            "*test_case?bert-tiny-onnxruntime-cpu-b4-s16? PASSED*",
        ]
    )
