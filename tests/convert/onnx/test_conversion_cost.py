"""What makes a conversion cheaper leaves it the same conversion: the same bytes without importing
onnx, both shapes validated in onnxruntime, torch's threads as they were."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_hfmodels.convert.onnx import build, export
from pytest_hfmodels.convert.onnx.cached import ONE_THREAD_BELOW_BYTES, conversion_threads, export_onnx
from pytest_hfmodels.convert.onnx.compare import compare_outputs
from pytest_hfmodels.convert.onnx.reference import load_reference
from pytest_hfmodels.convert.onnx.specs import read_config, spec_for
from pytest_hfmodels.registry.model import Tolerances
from tests.convert.onnx.test_export import model_dir

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
# A registered symbolic that is an ONNX function (what onnxscript's have, `to_function_proto`):
# torch's own pass must run then, and it imports onnx; no node of the graph uses it.
import torch
def symbolic(g, x):
    return g.op("hfmodels_test::Twice", x)
symbolic.to_function_proto = lambda: None
torch.onnx.register_custom_op_symbolic("hfmodels_test::twice", symbolic, 1)
assert export._registers_onnx_functions()
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


def _reference_checks(folder: Path) -> tuple[Any, ...]:
    """PyTorch's inputs and outputs at the validation and the export shape, as `convert` makes them."""
    config = read_config(folder)
    reference = load_reference(folder, spec_for(folder, config), config)
    validate_in = reference.inputs(reference.spec.validate_shape)
    export_in, export_out = reference.export_sample
    return (
        ("the validation shape", validate_in, reference.run(validate_in)),
        ("the export shape", export_in, export_out),
    )


def test_the_file_is_validated_at_the_validation_and_export_shapes(tmp_path: Path) -> None:
    """Both shapes run in onnxruntime against PyTorch; the agreement kept is the larger of the two."""
    folder = model_dir("bert-tiny")
    done = export_onnx(folder, tmp_path, exporter="legacy")
    checks = _reference_checks(folder)
    agreement = build.validate_in_onnxruntime(done.path, checks, Tolerances(), threads=None)
    session = export.onnxruntime_session(done.path)
    each = [
        compare_outputs(expected, export.run_session(session, inputs), 1e-4, 1e-4)
        for _, inputs, expected in checks
    ]
    assert agreement.ok and all(one.ok for one in each)
    assert agreement.max_abs_diff == max(one.max_abs_diff for one in each) > 0
    assert {name: tuple(value.shape) for name, value in checks[1][1].items()} == dict(done.export_shape)


def test_a_file_that_differs_at_the_export_shape_is_refused(tmp_path: Path) -> None:
    """PyTorch's outputs at the export shape are compared too: off by 1 there, the file is refused
    after passing at the validation shape."""
    folder = model_dir("bert-tiny")
    done = export_onnx(folder, tmp_path, exporter="legacy")
    at_validation, (what, inputs, outputs) = _reference_checks(folder)
    shifted = {name: value + 1.0 for name, value in outputs.items()}
    with pytest.raises(
        build.InvalidExport,
        match=r"^differs from PyTorch at the export shape \(input_ids 1x8, .*max abs diff 1",
    ):
        build.validate_in_onnxruntime(done.path, (at_validation, (what, inputs, shifted)), Tolerances(), None)


def test_threads_for_the_conversion_only(tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    with build.torch_threads(1):
        assert torch.get_num_threads() == 1
    with build.torch_threads(None):
        assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before
    export_onnx(model_dir("bert-tiny"), tmp_path, exporter="legacy", threads=1)
    assert torch.get_num_threads() == before


def test_small_models_convert_on_one_thread_large_ones_on_every_core(tmp_path: Path) -> None:
    assert conversion_threads(model_dir("bert-tiny")) == 1
    large = tmp_path / "large"
    large.mkdir()
    with (large / "model.safetensors").open("wb") as weights:
        weights.truncate(ONE_THREAD_BELOW_BYTES)  # sparse: only its size is read
    assert conversion_threads(large) is None
