"""Prove a weights file: its tensors against the originals, and the model's outputs with them loaded.

The file is read back one row group (one chunk) at a time, each chunk compared with the same elements
of its original and, for the output check, copied into it: the model is the only full set of weights
in memory. Tensors kept in their dtype must come back bit for bit. Tensors narrowed to float16 are held to a
relative error with an absolute floor: |original - stored| / max(|original|, floor), where the floor
is float16's smallest normal value, below which float16 spacing is absolute and a plain relative
error would blow up on values that were stored as well as float16 can.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from pytest_hfmodels.convert.parquet.format import BLOCK_ELEMENTS, copy_in_blocks, piece_tensor
from pytest_hfmodels.convert.parquet.load import Alias, Piece
from pytest_hfmodels.convert.parquet.source_model import SourceModel, run_forward
from pytest_hfmodels.convert.parquet.write import view_key


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
    # In blocks (see BLOCK_ELEMENTS): full-size temporaries of an embedding matrix would cost several
    # times its size. Two buffers serve every block: fresh tensors for each cost more than the
    # arithmetic (measured 10x slower with 1M-element blocks: the allocator maps and faults new memory).
    size = min(BLOCK_ELEMENTS, flat_original.numel())
    difference, scale = torch.empty(size, dtype=work), torch.empty(size, dtype=work)
    worst = 0.0
    for start in range(0, flat_original.numel(), BLOCK_ELEMENTS):
        reference = flat_original[start : start + BLOCK_ELEMENTS].to(work)  # may be the original: not written
        reloaded = flat_stored[start : start + BLOCK_ELEMENTS]
        count = reference.numel()
        # The plain formula first; it is exact unless some element is NaN or infinite, where faithful
        # storage (equal infinities, NaN as NaN) needs the masks of the careful one.
        error = torch.sub(reference, reloaded, out=difference[:count]).abs_()
        error.div_(torch.abs(reference, out=scale[:count]).clamp_min_(floor))
        block = float(error.max())
        if not math.isfinite(block):
            block = _relative_error_nonfinite(reference, reloaded.to(work), floor)
        worst = max(worst, block)
    return worst


def _relative_error_nonfinite(reference: torch.Tensor, reloaded: torch.Tensor, floor: float) -> float:
    inf = float("inf")
    # equal infinities and NaN stored as NaN are faithful, though their difference is NaN
    faithful = (reference == reloaded) | (reference.isnan() & reloaded.isnan())
    difference = (reference - reloaded).abs_()
    error = difference.div_(reference.abs().clamp_min_(floor)).masked_fill_(faithful, 0.0)
    return float(torch.nan_to_num(error, nan=inf, posinf=inf).max())


def same_bits(original: torch.Tensor, stored: torch.Tensor) -> bool:
    # Bytes, not values: NaN payloads and -0.0 must survive a lossless round trip too.
    if original.dtype != stored.dtype or original.shape != stored.shape:
        return False
    left = original.detach().contiguous().reshape(-1).view(torch.uint8)
    right = stored.detach().contiguous().reshape(-1).view(torch.uint8)
    return bool(torch.equal(left, right))


def overlapping(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether two of `tensors` share memory without being the same view (tied weights are).

    Restoring such a tensor changes the other's original before it is compared, so `check_pieces`
    must compare every tensor before it restores any.
    """
    spans = []
    for view in {view_key(t): t for t in tensors if t.numel()}.values():
        start = view.untyped_storage().data_ptr() + view.storage_offset() * view.element_size()
        last = sum((size - 1) * stride for size, stride in zip(view.shape, view.stride(), strict=True))
        spans.append((view.device, start, start + (last + 1) * view.element_size()))
    spans.sort(key=lambda span: (str(span[0]), span[1]))
    # sorted by start, some two overlap exactly when some neighbours do
    return any(a[0] == b[0] and b[1] < a[2] for a, b in itertools.pairwise(spans))


class _Compared:
    """One tensor's comparison while its chunks arrive (mutable, private to `check_pieces`)."""

    def __init__(self, original: torch.Tensor, narrowed: bool) -> None:
        self.original = original
        self.narrowed = narrowed
        # Chunks are ranges of the flat tensor; a non-contiguous original is compared (and restored)
        # through a contiguous copy, written back after its last chunk.
        self.flat = original.detach().reshape(-1)
        self.error = 0.0
        self.failed = False


def check_pieces(
    original: Mapping[str, torch.Tensor],
    pieces: Iterable[Piece | Alias],
    stored_dtypes: Mapping[str, str],
    *,
    max_relative_error: float,
    floor: float,
    restore: bool,
) -> TensorCheck:
    """Compare each stored chunk with the same elements of its original as it arrives; none is kept.

    With `restore`, each float16 chunk is then copied into its original (in place), so a model whose
    state dict `original` is computes with the file's weights without a second copy of them; chunks
    kept exactly are their originals' bytes already. Pass `restore` only when no two originals
    overlap (`overlapping`), since a restored chunk must not change an original not yet compared.
    """
    problems: list[str] = []
    seen: set[str] = set()
    extra: list[str] = []
    exact = narrowed = 0
    worst_error, worst_name = 0.0, None
    open_tensors: dict[str, _Compared | None] = {}  # None: not compared (extra, or already failed)
    checked: dict[str, _Compared] = {}  # compared to the end and passed, for their aliases
    for item in pieces:
        if isinstance(item, Alias):
            # Stored once, as its target: faithful when it views the same memory as the target in
            # the model (tied there too) and the target was faithful.
            seen.add(item.name)
            tensor, target = original.get(item.name), checked.get(item.alias_of)
            if tensor is None:
                extra.append(item.name)
            elif target is None:
                pass  # the target's own problem is reported; the alias adds nothing to it
            elif view_key(tensor) != view_key(target.original):
                problems.append(
                    f"{item.name}: stored as {item.alias_of}, which it is not tied to in the model"
                )
            else:
                exact += not target.narrowed
                narrowed += target.narrowed
            continue
        if item.offset == 0:
            seen.add(item.name)
            compared = _start(item, original.get(item.name), stored_dtypes, problems, extra)
            if compared is not None:
                exact += not compared.narrowed
                narrowed += compared.narrowed
            open_tensors[item.name] = compared
        compared = open_tensors[item.name]
        if compared is not None and not compared.failed:
            problem = _compare(item, compared, floor, restore)
            if problem:
                problems.append(problem)
                compared.failed = True
        if not item.last:
            continue
        del open_tensors[item.name]
        if compared is None or compared.failed:
            continue
        if restore and compared.narrowed and compared.flat.data_ptr() != compared.original.data_ptr():
            with torch.no_grad():
                compared.original.copy_(compared.flat.view(compared.original.shape))
        checked[item.name] = compared
        if compared.narrowed and (compared.error > worst_error or worst_name is None):
            worst_error, worst_name = compared.error, item.name
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


def _start(
    first: Piece,
    tensor: torch.Tensor | None,
    stored_dtypes: Mapping[str, str],
    problems: list[str],
    extra: list[str],
) -> _Compared | None:
    name = first.name
    if tensor is None:
        extra.append(name)
    elif tuple(first.shape) != tuple(tensor.shape):
        problems.append(f"{name}: shape {list(first.shape)} != original {list(tensor.shape)}")
    elif first.dtype == tensor.dtype:
        return _Compared(tensor, narrowed=False)
    elif first.dtype == torch.float16 and stored_dtypes.get(name) == "float16":
        return _Compared(tensor, narrowed=True)
    else:
        problems.append(f"{name}: dtype {first.dtype} in the file, {tensor.dtype} in the model")
    return None


def _compare(piece: Piece, compared: _Compared, floor: float, restore: bool) -> str | None:
    """One chunk against the same bytes or elements of its original; None when it is faithful."""
    if not compared.narrowed:
        stored = piece_tensor(piece.data, torch.uint8)
        original = compared.flat.view(torch.uint8)[piece.offset : piece.offset + stored.numel()]
        if not torch.equal(original, stored):
            return f"{piece.name}: kept as {piece.dtype} but its bytes differ from the original"
        return None
    if piece.offset % 2 or piece.data.nbytes % 2:
        return f"{piece.name}: a chunk of the file splits a float16 element"
    stored = piece_tensor(piece.data, torch.float16)
    elements = compared.flat[piece.offset // 2 : piece.offset // 2 + stored.numel()]
    compared.error = max(compared.error, relative_error(elements, stored, floor))
    if restore:
        with torch.no_grad():
            copy_in_blocks(elements, stored)
    return None


def check_outputs(
    source: SourceModel,
    reference: Mapping[str, torch.Tensor],
    inputs: Mapping[str, torch.Tensor],
    tolerance: float,
) -> OutputCheck:
    """Run the source model, its weights restored from the file (`check_pieces(restore=True)`), and
    compare its outputs with `reference`, the outputs of its original weights.

    Tensors the file does not hold (another component) keep their original values, so the outputs
    test exactly the tensors the file holds.
    """
    shapes = {name: list(t.shape) for name, t in inputs.items()}
    problems = []
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
