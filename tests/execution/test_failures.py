"""The failure classifier on the exact text runtimes print where this machine cannot make them
fail that way (no CUDA device, no DirectML, no Intel GPU), and on how it reports the cause.

Real errors of torch, onnxruntime and OpenVINO on this machine are classified in
tests/reliability/test_failure_classes.py.
"""

from __future__ import annotations

import pytest
import torch
from onnxruntime.capi.onnxruntime_pybind11_state import Fail

from pytest_hfmodels.errors import CaseFailedError, ModelSourceError
from pytest_hfmodels.execution.failures import FAILURE_CLASSES, classify

#: what torch's C10_CUDA_CHECK (c10/cuda/CUDAException.cpp) appends to every CUDA error
CUDA_CHECK_TAIL = (
    "\nCUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below"
    " might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1\n"
    "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.\n"
)

# (exception as the runtime raises it, expected class); each comment says where the text comes from
PRINTED = [
    # torch c10/cuda/CUDACachingAllocator.cpp, raised as torch.OutOfMemoryError
    (
        torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 139.72 GiB"
            " of which 1.06 GiB is free. Including non-PyTorch memory, this process has 138.65 GiB"
            " memory in use. Of the"
            " allocated memory 136.10 GiB is allocated by PyTorch, and 1.21 GiB is reserved by PyTorch but"
            " unallocated. If reserved but unallocated memory is large try setting"
            " PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for"
            " Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
        ),
        "out_of_memory",
    ),
    # torch C10_CUDA_CHECK on cudaErrorMemoryAllocation (a CUDA context that does not fit, say)
    (torch.AcceleratorError("CUDA error: out of memory" + CUDA_CHECK_TAIL), "out_of_memory"),
    # onnxruntime CUDA provider, core/providers/cuda/cuda_call.cc (CUDA_CALL_THROW)
    (
        Fail(
            "[ONNXRuntimeError] : 1 : FAIL : CUDA failure 2: out of memory ; GPU=0 ; hostname=gpu-host ;"
            " file=/onnxruntime_src/onnxruntime/core/providers/cuda/cuda_allocator.cc ; line=47 ;"
            " expr=cudaMalloc((void**)&p, size);"
        ),
        "out_of_memory",
    ),
    # onnxruntime core/framework/bfc_arena.cc with gpu_mem_limit set (the text is in this
    # machine's onnxruntime_pybind11_state.so)
    (
        Fail(
            "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running MatMul node."
            " Name:'/MatMul' Status Message: /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:360"
            " void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*)"
            " Available memory of 1048576 is smaller than requested bytes of 4194304"
        ),
        "out_of_memory",
    ),
    # std::bad_alloc as pybind11 translates it, and as a runtime's own exception reports it
    (MemoryError("std::bad_alloc"), "out_of_memory"),
    (
        RuntimeError("Exception from src/inference/src/cpp/infer_request.cpp:223:\nstd::bad_alloc\n"),
        "out_of_memory",
    ),
    # OpenVINO GPU plugin (the text is in this machine's libopenvino_intel_gpu_plugin.so; the
    # "Exception from" lines are the ones OpenVINO puts before every message)
    (
        RuntimeError("Exception from src/inference/src/cpp/core.cpp:109:\n[GPU] out of GPU resources\n"),
        "out_of_memory",
    ),
    # torch C10_CUDA_CHECK, raised as torch.AcceleratorError since torch 2.8
    (torch.AcceleratorError("CUDA error: device-side assert triggered" + CUDA_CHECK_TAIL), "device_error"),
    (
        torch.AcceleratorError(
            "CUDA error: no kernel image is available for execution on the device\nSearch for"
            " `cudaErrorNoKernelImageForDevice' in https://docs.nvidia.com/cuda/cuda-runtime-api/"
            "group__CUDART__TYPES.html for more information." + CUDA_CHECK_TAIL
        ),
        "device_error",
    ),
    # older torch raised the same as a plain RuntimeError
    (RuntimeError("CUDA error: an illegal memory access was encountered" + CUDA_CHECK_TAIL), "device_error"),
    # torch c10/cuda/CUDAFunctions.cpp (the text is in this machine's libc10.so)
    (RuntimeError("No CUDA GPUs are available"), "device_error"),
    # onnxruntime CUDA provider, core/providers/cuda/cuda_call.cc
    (
        Fail(
            "[ONNXRuntimeError] : 1 : FAIL : CUDA failure 100: no CUDA-capable device is detected ; GPU=0 ;"
            " hostname=gpu-host ;"
            " file=/onnxruntime_src/onnxruntime/core/providers/cuda/cuda_execution_provider.cc"
            " ; line=282 ; expr=cudaSetDevice(info_.device_id);"
        ),
        "device_error",
    ),
    # onnxruntime DirectML provider, as reported in microsoft/onnxruntime#22700
    (
        Fail(
            "[ONNXRuntimeError] : 1 : FAIL : D:\\a\\_work\\1\\s\\onnxruntime\\core\\providers\\dml\\"
            "DmlExecutionProvider\\src\\ExecutionProvider.cpp(962)\\onnxruntime_pybind11_state.pyd!00007FFABA30B0B1:"
            " (caller: 00007FFABA30B740) Exception(3) tid(5a68) 887A0005 The GPU device instance has been"
            " suspended. Use GetDeviceRemovedReason to determine the appropriate action."
        ),
        "device_error",
    ),
    # OpenVINO core (the text is in this machine's libopenvino.so)
    (
        RuntimeError(
            "Exception from src/inference/src/cpp/core.cpp:117:\n"
            'Device with "GPU" name is not registered in the'
            " OpenVINO Runtime\n"
        ),
        "device_error",
    ),
    # OpenVINO CPU plugin (the text is in this machine's libopenvino_intel_cpu_plugin.so)
    (
        RuntimeError(
            "Exception from src/inference/src/cpp/core.cpp:109:\nException from"
            " src/plugins/intel_cpu/src/node.cpp:1245:\n"
            "Unsupported operation of type: Frobnicate name: frob\n"
        ),
        "unsupported_operation",
    ),
]


@pytest.mark.parametrize(("error", "expected"), PRINTED, ids=[f"{e}-{str(err)[:40]}" for err, e in PRINTED])
def test_runtime_messages_land_in_their_class(error: BaseException, expected: str) -> None:
    failure = classify(error)
    assert failure.name == expected
    assert failure.cause.startswith(type(error).__name__) and "\n" not in failure.cause
    assert failure.suggested_fix


def test_a_cuda_error_out_of_memory_is_memory_not_the_device() -> None:
    # "CUDA error" alone is a device error; out of memory says more, so it wins
    error = torch.AcceleratorError("CUDA error: out of memory" + CUDA_CHECK_TAIL)
    assert classify(error).cause == "AcceleratorError: CUDA error: out of memory"


def test_the_cause_is_the_line_that_says_what_happened() -> None:
    openvino_style = RuntimeError(
        "Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'false' failed at"
        " src/frontends/common_translators/src/unconverted_ops_report.cpp:151:\nFrontEnd API failed with"
        " OpConversionFailure:\nModel wasn't fully converted.\nSummary:\n-- No conversion rule found for"
        " operations: org.example.Frobnicate\n\n"
    )
    failure = classify(openvino_style)
    assert failure.name == "unsupported_operation"
    assert failure.cause == "RuntimeError: -- No conversion rule found for operations: org.example.Frobnicate"


def test_an_unmatched_message_gives_its_first_line_without_source_locations_or_colours() -> None:
    failure = classify(
        RuntimeError("Exception from src/core.cpp:12:\n\x1b[96mshape mismatch\x1b[0m\nmore detail\n")
    )
    assert failure.name == "other" and failure.cause == "RuntimeError: shape mismatch"
    assert classify(MemoryError()).cause == "MemoryError"


def test_the_class_comes_through_a_chain_of_wrappers() -> None:
    try:
        try:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")
        except RuntimeError as exc:
            raise ModelSourceError("loading the model failed") from exc
    except ModelSourceError as outer:
        wrapped = CaseFailedError("case failed")
        wrapped.__cause__ = outer
    failure = classify(wrapped)
    assert failure.name == "out_of_memory"
    assert failure.cause == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."


@pytest.mark.parametrize(
    "error",
    [
        TypeError("unsupported operand type(s) for +: 'int' and 'str'"),
        ValueError("memory layout not contiguous"),
        RuntimeError("the device is ready"),
    ],
)
def test_ordinary_errors_that_mention_the_words_stay_other(error: BaseException) -> None:
    assert classify(error).name == "other" and classify(error).suggested_fix is None


def test_every_class_is_a_known_one() -> None:
    names = {classify(error).name for error, _ in PRINTED}
    assert names <= set(FAILURE_CLASSES)
