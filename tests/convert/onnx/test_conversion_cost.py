"""What makes a conversion cheaper leaves it the same conversion: the same bytes without importing
onnx, both shapes validated in one onnxruntime session, torch's threads as they were."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_hfmodels.convert.onnx import build, export
from pytest_hfmodels.convert.onnx.cached import ONE_THREAD_BELOW_BYTES, conversion_threads, export_onnx
from pytest_hfmodels.errors import ModelConversionError
from tests.convert.onnx.test_export import conversions, model_dir

pytestmark = pytest.mark.slow  # builds and runs real models

SAME_BYTES = """
import hashlib, json, sys
from pathlib import Path
from pytest_hfmodels.convert.onnx import export
from pytest_hfmodels.convert.onnx.cached import export_onnx

def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

folder, root = sys.argv[1], Path(sys.argv[2])
skipped = export_onnx(folder, root / "skipped", exporter="legacy")
imported = sorted(m for m in ("onnx", "ml_dtypes", "onnxscript") if m in sys.modules)
export._registers_onnx_functions = lambda: True  # torch's own pass, which imports onnx
torchs = export_onnx(folder, root / "torchs", exporter="legacy")
print(json.dumps({"imported": imported, "onnx_after": "onnx" in sys.modules,
                  "skipped": sha(skipped.path), "torchs": sha(torchs.path)}))
"""


def test_legacy_export_is_the_same_file_without_importing_onnx(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SAME_BYTES, str(model_dir("bert-tiny")), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["imported"] == [] and result["onnx_after"]
    assert result["skipped"] == result["torchs"]


def test_a_registered_onnx_function_runs_torchs_own_pass() -> None:
    """An onnxscript function registered as a custom symbolic must reach the file: torch's pass adds it."""
    import torch

    def symbolic(g: Any, x: Any) -> Any:
        return g.op("hfmodels_test::Twice", x)

    assert not export._registers_onnx_functions()
    symbolic.to_function_proto = lambda: None  # type: ignore[attr-defined]  # what onnxscript's have
    torch.onnx.register_custom_op_symbolic("hfmodels_test::twice", symbolic, 1)
    try:
        assert export._registers_onnx_functions()
    finally:
        torch.onnx.unregister_custom_op_symbolic("hfmodels_test::twice", 1)
    assert not export._registers_onnx_functions()


def test_one_session_validates_at_the_validation_and_export_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions: list[Any] = []
    runs: list[tuple[int, dict[str, tuple[int, ...]]]] = []
    make_session, run_session = build.onnxruntime_session, build.run_session

    def counted_session(*args: Any, **kwargs: Any) -> Any:
        sessions.append(make_session(*args, **kwargs))
        return sessions[-1]

    def recorded_run(session: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        runs.append((id(session), {name: tuple(value.shape) for name, value in inputs.items()}))
        return run_session(session, inputs)

    monkeypatch.setattr(build, "onnxruntime_session", counted_session)
    monkeypatch.setattr(build, "run_session", recorded_run)
    done = export_onnx(model_dir("bert-tiny"), tmp_path, exporter="legacy")
    assert len(sessions) == 1 and {session for session, _ in runs} == {id(sessions[0])}
    assert [shapes for _, shapes in runs] == [dict(done.validation_shape), dict(done.export_shape)]


def test_a_file_that_differs_at_the_export_shape_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyTorch's outputs at the export shape are compared too: off by 1 there, the file is refused."""
    load_reference = build.load_reference

    def off_at_export_shape(*args: Any) -> Any:
        reference = load_reference(*args)
        inputs, outputs = reference.export_sample
        shifted = {name: value + 1.0 for name, value in outputs.items()}
        return dataclasses.replace(reference, export_sample=(inputs, shifted))

    monkeypatch.setattr(build, "load_reference", off_at_export_shape)
    with pytest.raises(
        ModelConversionError,
        match=r"legacy export differs from PyTorch at the export shape \(input_ids 1x8, .*max abs diff 1",
    ):
        export_onnx(model_dir("bert-tiny"), tmp_path, exporter="legacy")
    assert conversions(tmp_path) == []


def test_threads_for_the_conversion_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    during: list[int] = []
    export_file = build.export_file

    def counted(*args: Any) -> None:
        during.append(torch.get_num_threads())
        export_file(*args)

    monkeypatch.setattr(build, "export_file", counted)
    before = torch.get_num_threads()
    export_onnx(model_dir("bert-tiny"), tmp_path, exporter="legacy", threads=1)
    assert during == [1] and torch.get_num_threads() == before


def test_small_models_convert_on_one_thread_large_ones_on_every_core(tmp_path: Path) -> None:
    assert conversion_threads(model_dir("bert-tiny")) == 1
    large = tmp_path / "large"
    large.mkdir()
    with (large / "model.safetensors").open("wb") as weights:
        weights.truncate(ONE_THREAD_BELOW_BYTES)  # sparse: only its size is read
    assert conversion_threads(large) is None
