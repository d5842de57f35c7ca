"""Real errors of the runtimes, produced on this machine, land in the right failure class.

No mocks: each test makes torch, onnxruntime or OpenVINO fail the way it fails in a run and
classifies what it raised. Allocations ask for at least 128 TiB, all that a 47-bit user address
space holds, so they fail at once whatever the kernel's overcommit setting, touching no memory.
Errors this machine cannot produce (a CUDA device's) are checked on their exact text in
tests/execution/test_failures.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import openvino
import pytest
import torch
from onnx import TensorProto, helper

from pytest_hfmodels.execution.failures import FailureClass, classify

#: 2**45 doubles: 256 TiB in onnxruntime, 128 TiB in OpenVINO's CPU plugin (which computes in f32)
HUGE_SHAPE = np.array([2**16, 2**16, 2**13], dtype=np.int64)


def raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except Exception as exc:
        return exc
    raise AssertionError("the runtime raised nothing")


def classified(action: Callable[[], object]) -> FailureClass:
    failure = classify(raised(action))
    assert "\n" not in failure.cause and failure.cause.strip() == failure.cause
    return failure


def fill_model() -> onnx.ModelProto:
    """y = ConstantOfShape(shape) of doubles: as large as the shape it is fed."""
    node = helper.make_node(
        "ConstantOfShape", ["shape"], ["y"], value=helper.make_tensor("one", TensorProto.DOUBLE, [1], [1.0])
    )
    graph = helper.make_graph(
        [node],
        "fill",
        [helper.make_tensor_value_info("shape", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def one_op_model(op: str, elem_type: int, domain: str = "") -> onnx.ModelProto:
    """y = op(x) on a two-element tensor."""
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], domain=domain)],
        op,
        [helper.make_tensor_value_info("x", elem_type, [2])],
        [helper.make_tensor_value_info("y", elem_type, [2])],
    )
    opsets = [helper.make_opsetid("", 17), *([helper.make_opsetid(domain, 1)] if domain else [])]
    return helper.make_model(graph, opset_imports=opsets)


def ort_session(model: onnx.ModelProto) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def ov_compiled(model: onnx.ModelProto) -> Any:
    core = openvino.Core()
    return core.compile_model(core.read_model(model=model.SerializeToString(), weights=b""), "CPU")


# -- out of memory ---------------------------------------------------------------------------


def test_torch_cpu_allocator_failure_is_out_of_memory() -> None:
    failure = classified(lambda: torch.empty(2**60, dtype=torch.uint8))
    assert failure.name == "out_of_memory"
    assert "DefaultCPUAllocator: can't allocate memory" in failure.cause


def test_numpy_allocation_failure_is_out_of_memory() -> None:
    failure = classified(lambda: np.empty(2**60, dtype=np.uint8))
    assert failure.name == "out_of_memory" and failure.cause.startswith("MemoryError: Unable to allocate")


def test_onnxruntime_allocation_failure_is_out_of_memory() -> None:
    session = ort_session(fill_model())
    failure = classified(lambda: session.run(None, {"shape": HUGE_SHAPE}))
    assert failure.name == "out_of_memory"
    assert "Failed to allocate memory for requested buffer" in failure.cause


def test_openvino_allocation_failure_is_out_of_memory() -> None:
    compiled = ov_compiled(fill_model())
    failure = classified(lambda: compiled({"shape": HUGE_SHAPE}))
    assert failure.name == "out_of_memory"
    # the CPU plugin computes in f32: 128 TiB, still more than the address space
    assert failure.cause == "RuntimeError: Failed to allocate 140737488355328 bytes of memory"


# -- unsupported operations -------------------------------------------------------------------


def test_onnxruntime_without_a_kernel_for_the_type_is_unsupported() -> None:
    failure = classified(lambda: ort_session(one_op_model("Relu", TensorProto.INT16)))
    assert failure.name == "unsupported_operation"
    assert failure.cause.startswith(
        "NotImplemented: [ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find"
    )


def test_onnxruntime_unknown_custom_op_is_unsupported() -> None:
    failure = classified(lambda: ort_session(one_op_model("Frobnicate", TensorProto.FLOAT, "org.example")))
    assert failure.name == "unsupported_operation"
    assert "org.example:Frobnicate(-1) is not a registered function/op" in failure.cause


def test_openvino_onnx_op_without_conversion_rule_is_unsupported() -> None:
    failure = classified(lambda: ov_compiled(one_op_model("Frobnicate", TensorProto.FLOAT, "org.example")))
    assert failure.name == "unsupported_operation"
    assert failure.cause == "RuntimeError: -- No conversion rule found for operations: org.example.Frobnicate"


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        ('type="Frobnicate" version="opset1"', "doesn't contain the operation with type: Frobnicate"),
        ('type="ReLU" version="opset99"', "from unsupported opset: opset99"),
    ],
    ids=["unknown-type", "unknown-opset"],
)
def test_openvino_ir_layer_it_cannot_create_is_unsupported(tmp_path: Path, layer: str, expected: str) -> None:
    from openvino import opset13

    x = opset13.parameter([2], np.float32, name="x")
    openvino.save_model(openvino.Model([opset13.relu(x)], [x], "relu"), tmp_path / "relu.xml")
    xml = (tmp_path / "relu.xml").read_text()
    assert 'type="ReLU" version="opset1"' in xml
    (tmp_path / "relu.xml").write_text(xml.replace('type="ReLU" version="opset1"', layer))
    failure = classified(lambda: openvino.Core().read_model(tmp_path / "relu.xml"))
    assert failure.name == "unsupported_operation" and expected in failure.cause


def test_torch_kernel_missing_for_a_dtype_is_unsupported() -> None:
    ones = torch.ones(2, 2, dtype=torch.uint16)
    failure = classified(lambda: ones @ ones)
    assert failure.name == "unsupported_operation" and "not implemented for 'UInt16'" in failure.cause


class Eigenvalues(torch.nn.Module):
    """An operator neither torch.onnx exporter can translate."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real_parts: torch.Tensor = torch.linalg.eigvals(x).real
        return real_parts


@pytest.mark.parametrize(
    ("dynamo", "expected"),
    [
        (False, "UnsupportedOperatorError: Exporting the operator 'aten::linalg_eigvals' to ONNX opset"),
        (True, "DispatchError: No ONNX function found for <OpOverload(op='aten.linalg_eig'"),
    ],
    ids=["torchscript-exporter", "dynamo-exporter"],
)
def test_torch_onnx_export_of_an_unsupported_operator_is_unsupported(
    tmp_path: Path, dynamo: bool, expected: str
) -> None:
    def export() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Eigenvalues(), (torch.eye(2),), tmp_path / "eig.onnx", dynamo=dynamo, verbose=False
            )

    failure = classified(export)
    assert failure.name == "unsupported_operation" and failure.cause.startswith(expected)


# -- device errors ---------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch build has CUDA")
def test_torch_without_cuda_asked_for_a_cuda_tensor_is_a_device_error() -> None:
    failure = classified(lambda: torch.zeros(1, device="cuda"))
    assert (
        failure.name == "device_error"
        and failure.cause == "AssertionError: Torch not compiled with CUDA enabled"
    )


@pytest.mark.skipif("GPU" in openvino.Core().available_devices, reason="OpenVINO has a GPU here")
def test_openvino_without_a_gpu_asked_for_one_is_a_device_error() -> None:
    core = openvino.Core()
    model = one_op_model("Relu", TensorProto.FLOAT)
    failure = classified(
        lambda: core.compile_model(core.read_model(model=model.SerializeToString(), weights=b""), "GPU")
    )
    assert failure.name == "device_error"
