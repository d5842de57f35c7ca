"""Classifying why a case failed, so the report and the database can say it in one word.

The classes come from the exception's type where Python has one for it, and otherwise from the
text each runtime really prints: torch, onnxruntime and OpenVINO raise plain RuntimeErrors (or
their own exception types) whose message is all there is to go by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_hfmodels.errors import CheckFailed, DependencyMissingError, NumericalMismatchError

FAILURE_CLASSES = (
    "dependency_missing",
    "out_of_memory",
    "device_error",
    "unsupported_operation",
    "numerical_mismatch",
    "output_check",
    "other",
)

_SUGGESTED_FIX = {
    "dependency_missing": "install the missing package (see the message) into the test environment",
    "out_of_memory": "use a smaller batch or sequence length, or a device with more memory",
    "device_error": "check the device driver and that the runtime build supports this device",
    "unsupported_operation": "try another opset, exporter or runtime version, or file an issue upstream",
    "numerical_mismatch": "compare precisions (fp32 vs bf16) and the family's tolerances",
    "output_check": "inspect the model output named in the message; the model may be broken",
    "other": None,
}

#: exception types that name their class; the first that matches wins (a subclass before its base)
_TYPE_CLASSES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    ((DependencyMissingError, ModuleNotFoundError), "dependency_missing"),
    (NumericalMismatchError, "numerical_mismatch"),
    (CheckFailed, "output_check"),
    # Python's own, numpy's "Unable to allocate ...", and std::bad_alloc as pybind11 raises it
    (MemoryError, "out_of_memory"),
    # torch: '"addmm_impl_cpu_" not implemented for 'UInt16'', "Could not run 'aten::...' with
    # arguments from the '...' backend"
    (NotImplementedError, "unsupported_operation"),
)

#: (pattern, class), searched case-insensitively in "<exception type name>: <message>"; the first
#: match wins, so out of memory comes before device errors ("CUDA error: out of memory").
_MESSAGE_CLASSES: tuple[tuple[str, str], ...] = (
    # torch.OutOfMemoryError (CUDA, XPU, MPS allocators), torch.cuda.OutOfMemoryError
    (r"^OutOfMemoryError:", "out_of_memory"),
    # torch CUDA caching allocator "CUDA out of memory. Tried to allocate ...", CUDA runtime "CUDA
    # error: out of memory", onnxruntime CUDA provider "CUDA failure 2: out of memory ; GPU=0 ..."
    (r"out of memory", "out_of_memory"),
    # torch c10/core/impl/alloc_cpu.cpp: "DefaultCPUAllocator: can't allocate memory: you tried to
    # allocate N bytes. Error code 12 (Cannot allocate memory)"
    (r"can't allocate memory", "out_of_memory"),
    # onnxruntime bfc_arena.cc: "Failed to allocate memory for requested buffer of size N";
    # OpenVINO core: "Failed to allocate memory"
    (r"Failed to allocate memory", "out_of_memory"),
    # OpenVINO CPU plugin cpu_memory.cpp: "Failed to allocate N bytes of memory"
    (r"Failed to allocate \d+ bytes", "out_of_memory"),
    # onnxruntime bfc_arena.cc with an arena limit: "Available memory of N is smaller than
    # requested bytes of M"
    (r"Available memory of \d+ is smaller than requested bytes", "out_of_memory"),
    # std::bad_alloc's what() (libstdc++ "std::bad_alloc", MSVC "bad allocation") in a runtime's
    # own exception; cuBLAS / cuDNN "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED"
    (r"bad_alloc|bad allocation|_STATUS_ALLOC_FAILED", "out_of_memory"),
    # OpenVINO GPU plugin: "[GPU] out of GPU resources", "[GPU] Exceeded max size of memory
    # (object) allocation: ..."
    (r"out of GPU resources|Exceeded max size of memory", "out_of_memory"),
    # onnxruntime NOT_IMPLEMENTED: "Could not find an implementation for Relu(14) node with name ''"
    (r"Could not find an implementation for", "unsupported_operation"),
    # onnxruntime: "Fatal error: org.example:Frobnicate(-1) is not a registered function/op"
    (r"is not a registered function/op", "unsupported_operation"),
    # OpenVINO ONNX/PyTorch front ends: "-- No conversion rule found for operations: ...",
    # "FrontEnd API failed with OpConversionFailure"
    (r"No conversion rule found for operations", "unsupported_operation"),
    (r"OpConversionFailure", "unsupported_operation"),
    # OpenVINO IR reader: "Cannot create ReLU layer name id:1 from unsupported opset: opset99",
    # "Opset opset1 doesn't contain the operation with type: Foo"; CPU plugin: "Unsupported
    # operation of type: Foo name: ...", "... is not supported by the CPU plugin."; older front
    # ends: "OpenVINO does not support the following ONNX operations: ..."
    (r"Cannot create \S+ layer .* from unsupported opset", "unsupported_operation"),
    (r"doesn't contain the operation with type", "unsupported_operation"),
    (r"Unsupported operation of type|is not supported by the \w+ plugin", "unsupported_operation"),
    (r"OpenVINO does not support the following", "unsupported_operation"),
    # torch.onnx (TorchScript exporter) UnsupportedOperatorError: "Exporting the operator 'aten::x'
    # to ONNX opset version 17 is not supported", "ONNX export failed on an operator with
    # unrecognized namespace ns::op"; dynamo exporter DispatchError: "No ONNX function found for ..."
    (r"^(?:UnsupportedOperatorError|DispatchError):", "unsupported_operation"),
    (r"to ONNX opset version \d+ is not supported", "unsupported_operation"),
    (r"ONNX export failed on an operator|No ONNX function found for", "unsupported_operation"),
    # torch >= 2.8 raises torch.AcceleratorError for CUDA / HIP / XPU runtime errors
    (r"^AcceleratorError:", "device_error"),
    # torch C10_CUDA_CHECK: "CUDA error: an illegal memory access was encountered", "CUDA error:
    # device-side assert triggered", "CUDA error: no kernel image is available ..."; ROCm "HIP error"
    (r"CUDA error|HIP error|device-side assert", "device_error"),
    # onnxruntime CUDA / ROCm providers: "CUDA failure 100: no CUDA-capable device is detected ;
    # GPU=..."; also "CUDNN failure 4: ...", "CUBLAS failure 13: ..."
    (r"(?:CUDA|HIP|CUDNN|CUBLAS|MIOPEN|ROCBLAS) failure \d+", "device_error"),
    # torch: "No CUDA GPUs are available" (c10), "Torch not compiled with CUDA enabled"
    # (torch/cuda/__init__.py); "Found no NVIDIA driver on your system"
    (r"No CUDA GPUs are available|not compiled with CUDA|Found no NVIDIA driver", "device_error"),
    # a lost device: DirectML (onnxruntime, torch-directml) "887A0005 The GPU device instance has
    # been suspended. Use GetDeviceRemovedReason ...", "887A0006 The GPU will not respond to more
    # commands ..."; "DXGI_ERROR_DEVICE_REMOVED", Vulkan "VK_ERROR_DEVICE_LOST"
    (r"GPU device instance has been suspended|GPU will not respond to more commands", "device_error"),
    (r"device (?:was )?(?:lost|removed)|DEVICE_(?:LOST|REMOVED|HUNG)|fallen off the bus", "device_error"),
    # OpenVINO: 'Device with "GPU" name is not registered in the OpenVINO Runtime', a device plugin
    # that cannot load ('Cannot load library ".../libopenvino_intel_gpu_plugin.so": libOpenCL.so.1:
    # cannot open shared object file'), the GPU plugin's OpenCL failures
    (r'Device with "[^"]*" name is not registered', "device_error"),
    (r"Cannot load library \S*libopenvino_intel_\w+", "device_error"),
    (r"clGetPlatformIDs|CL_OUT_OF_RESOURCES|CL_DEVICE_NOT_AVAILABLE", "device_error"),
)
_COMPILED = tuple((re.compile(pattern, re.IGNORECASE), name) for pattern, name in _MESSAGE_CLASSES)

#: OpenVINO opens its messages with lines that only say where the exception passed through
_LOCATION_LINE = re.compile(r"^Exception from \S+:\d+:$")
_TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class FailureClass:
    name: str
    cause: str  #: type and one line of the message of the innermost real cause
    suggested_fix: str | None


def error_chain(error: BaseException) -> list[BaseException]:
    """`error` and its causes, outermost first (each once: a chain can loop)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def classify(error: BaseException) -> FailureClass:
    """Name the failure class of `error`, looking through its chain of causes."""
    chain = error_chain(error)
    name = next((n for n in (_class_of(e) for e in chain) if n != "other"), "other")
    return FailureClass(name, _cause_line(chain[-1]), _SUGGESTED_FIX[name])


def _class_of(error: BaseException) -> str:
    for types, name in _TYPE_CLASSES:
        if isinstance(error, types):
            return name
    text = f"{type(error).__name__}: {error}"
    return next((name for pattern, name in _COMPILED if pattern.search(text)), "other")


def _cause_line(error: BaseException) -> str:
    """The error's type and the one line of its message that says most: the line a pattern of the
    table matched, or else the first line that is more than a source location."""
    lines = [line.strip() for line in _TERMINAL_ESCAPE.sub("", str(error)).splitlines()]
    lines = [line for line in lines if line and not _LOCATION_LINE.match(line)]
    matched = (line for pattern, _ in _COMPILED for line in lines if pattern.search(line))
    line = next(matched, lines[0] if lines else "")
    return f"{type(error).__name__}: {line}" if line else type(error).__name__
