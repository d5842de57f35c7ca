"""Prove a weights file: its tensors against the originals, and the model's outputs with them loaded.

Tensors kept in their dtype must come back bit for bit. Tensors narrowed to float16 are held to a
relative error with an absolute floor: |original - stored| / max(|original|, floor), where the floor
is float16's smallest normal value, below which float16 spacing is absolute and a plain relative
error would blow up on values that were stored as well as float16 can.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from pytest_hfmodels.convert.parquet.source_model import SourceModel, run_forward

#: elements compared at a time (8 MB per float64 temporary, 4 MB per float32 one)
_BLOCK = 1 << 20


@dataclass(frozen=True)
class TensorCheck:
    exact_tensors: int
    float16_tensors: int
    #: largest relative error (with floor) over the float16 tensors; 0.0 when there are none
    max_relative_error: float
    worst_tensor: str | None
    problems: tuple[str, ...]


@dataclass(frozen=True)
class OutputCheck:
    checked: bool
    #: largest |original - reloaded| over all outputs, relative to that output's largest |original|
    max_output_error: float = 0.0
    worst_output: str | None = None
    tolerance: float = 0.0
    inputs: dict[str, list[int]] = field(default_factory=dict, hash=False)
    problems: tuple[str, ...] = ()
    skipped_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "max_output_error": self.max_output_error,
            "worst_output": self.worst_output,
            "tolerance": self.tolerance,
            "inputs": self.inputs,
            "problems": list(self.problems),
            "skipped_reason": self.skipped_reason,
        }


def relative_error(original: torch.Tensor, stored: torch.Tensor, floor: float) -> float:
    """max |original - stored| / max(|original|, floor); inf if stored overflowed.

    Computed in float32 for float32 sources: x - float16(x) is exact there (float16(x) is 0, inf,
    or within a factor 2 of x, Sterbenz), so only the division rounds, at 6e-8 relative.
    """
    work = torch.float64 if original.dtype == torch.float64 else torch.float32
    flat_original = original.detach().reshape(-1)
    flat_stored = stored.detach().reshape(-1)
    worst = 0.0
    inf = float("inf")
    # In blocks: full-size temporaries of an embedding matrix would cost several times its size.
    for start in range(0, flat_original.numel(), _BLOCK):
        # copy=True: abs_() below must never write into the original
        reference = flat_original[start : start + _BLOCK].to(work, copy=True)
        reloaded = flat_stored[start : start + _BLOCK].to(work)
        # equal infinities and NaN stored as NaN are faithful, though their difference is NaN
        faithful = (reference == reloaded) | (reference.isnan() & reloaded.isnan())
        difference = (reference - reloaded).abs_()
        error = difference.div_(reference.abs_().clamp_min_(floor)).masked_fill_(faithful, 0.0)
        worst = max(worst, float(torch.nan_to_num(error, nan=inf, posinf=inf).max()))
    return worst


def same_bits(original: torch.Tensor, stored: torch.Tensor) -> bool:
    # Bytes, not values: NaN payloads and -0.0 must survive a lossless round trip too.
    if original.dtype != stored.dtype or original.shape != stored.shape:
        return False
    left = original.detach().contiguous().reshape(-1).view(torch.uint8)
    right = stored.detach().contiguous().reshape(-1).view(torch.uint8)
    return bool(torch.equal(left, right))


def check_tensors(
    original: Mapping[str, torch.Tensor],
    reloaded: Iterable[tuple[str, torch.Tensor]],
    stored_dtypes: Mapping[str, str],
    *,
    max_relative_error: float,
    floor: float,
) -> TensorCheck:
    """Compare each reloaded tensor with its original as it arrives; none is kept."""
    problems: list[str] = []
    seen: set[str] = set()
    extra: list[str] = []
    exact = narrowed = 0
    worst_error, worst_name = 0.0, None
    for name, stored in reloaded:
        seen.add(name)
        tensor = original.get(name)
        if tensor is None:
            extra.append(name)
        elif tuple(stored.shape) != tuple(tensor.shape):
            problems.append(f"{name}: shape {list(stored.shape)} != original {list(tensor.shape)}")
        elif stored.dtype == tensor.dtype:
            exact += 1
            if not same_bits(tensor, stored):
                problems.append(f"{name}: kept as {tensor.dtype} but its bytes differ from the original")
        elif stored.dtype == torch.float16 and stored_dtypes.get(name) == "float16":
            narrowed += 1
            error = relative_error(tensor, stored, floor)
            if error > worst_error or worst_name is None:
                worst_error, worst_name = error, name
        else:
            problems.append(f"{name}: dtype {stored.dtype} in the file, {tensor.dtype} in the model")
    missing = sorted(set(original) - seen)
    if missing:
        problems.append(f"missing from the file: {_some(missing)}")
    if extra:
        problems.append(f"not in the model: {_some(sorted(extra))}")
    if worst_error > max_relative_error:
        problems.append(
            f"{worst_name}: float16 relative error {worst_error:.3g} exceeds {max_relative_error:.3g}"
            + (" (values outside float16's range)" if worst_error == float("inf") else "")
        )
    return TensorCheck(exact, narrowed, worst_error, worst_name, tuple(problems))


def check_outputs(
    source: SourceModel,
    reference: Mapping[str, torch.Tensor],
    inputs: Mapping[str, torch.Tensor],
    reloaded: Iterable[tuple[str, torch.Tensor]],
    selected: set[str],
    tolerance: float,
) -> OutputCheck:
    """Copy the reloaded tensors into the source model (in place) and compare its outputs.

    Tensors not in `selected` (the other component) keep their original values, so the outputs
    test exactly the tensors the file holds.
    """
    shapes = {name: list(t.shape) for name, t in inputs.items()}
    # state_dict() tensors share memory with the parameters: copying into them restores the model
    # one tensor at a time, where load_state_dict would want every reloaded tensor at once.
    targets = source.model.state_dict()
    restored: set[str] = set()
    problems = []
    with torch.no_grad():
        for name, tensor in reloaded:
            target = targets.get(name)
            if target is None or target.shape != tensor.shape:
                problems.append(f"{name}: not a tensor of this shape in the model")
                continue
            target.copy_(tensor)
            restored.add(name)
    if restored != selected:
        problems.append(f"selected tensors the file did not restore: {_some(sorted(selected - restored))}")
    outputs = run_forward(source.model, inputs)
    worst, worst_name = 0.0, None
    for name, expected in reference.items():
        actual = outputs.get(name)
        if actual is None or actual.shape != expected.shape:
            problems.append(f"output {name}: missing or of another shape after reloading")
            continue
        error = _output_error(expected, actual)
        if error > worst or worst_name is None:
            worst, worst_name = error, name
    if worst > tolerance:
        problems.append(
            f"output {worst_name}: differs by {worst:.3g} of its scale, tolerance {tolerance:.3g}"
        )
    return OutputCheck(True, worst, worst_name, tolerance, shapes, tuple(problems))


def _some(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _output_error(expected: torch.Tensor, actual: torch.Tensor) -> float:
    if expected.numel() == 0:
        return 0.0
    expected64, actual64 = expected.to(torch.float64), actual.to(torch.float64)
    # NaN where the original had NaN is a faithful reload; NaN anywhere else is an infinite error.
    difference = (actual64 - expected64).abs().masked_fill(expected64.isnan() & actual64.isnan(), 0.0)
    scale = float(torch.nan_to_num(expected64.abs(), nan=0.0).max())
    inf = float("inf")
    return float(torch.nan_to_num(difference, nan=inf, posinf=inf).max()) / max(scale, 1e-12)
