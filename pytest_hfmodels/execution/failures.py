"""Classifying why a case failed, so the report and the database can say it in one word."""

from __future__ import annotations

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


@dataclass(frozen=True)
class FailureClass:
    name: str
    cause: str  #: type and message of the innermost real cause
    suggested_fix: str | None


def classify(error: BaseException) -> FailureClass:
    """Name the failure class of `error`, looking through its chain of causes."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    name = next((n for n in (_class_of(e) for e in chain) if n != "other"), "other")
    root = chain[-1]
    return FailureClass(name, f"{type(root).__name__}: {root}".strip(), _SUGGESTED_FIX[name])


def _class_of(error: BaseException) -> str:
    text = str(error).lower()
    kind = type(error).__name__
    if isinstance(error, (DependencyMissingError, ModuleNotFoundError)):
        return "dependency_missing"
    if isinstance(error, MemoryError) or kind == "OutOfMemoryError" or "out of memory" in text:
        return "out_of_memory"
    if isinstance(error, NumericalMismatchError):
        return "numerical_mismatch"
    if isinstance(error, CheckFailed):
        return "output_check"
    if isinstance(error, NotImplementedError) or "not implemented" in text or "unsupported" in text:
        return "unsupported_operation"
    if "cuda error" in text or "device-side" in text or "hip error" in text or "no kernel image" in text:
        return "device_error"
    return "other"
