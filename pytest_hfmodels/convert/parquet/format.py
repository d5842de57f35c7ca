"""The layout of a Parquet weights file, shared by the writer and the readers.

One row per tensor, or per chunk of a tensor too large for one Parquet value, and one row group per
such row, so a reader fetches one tensor's bytes without touching the others (row-group statistics
on `name` say which group holds which tensor). Tied tensors get one row with `alias_of` set and no
data. Tensor bytes are stored raw, little-endian, under their exact torch dtype name; a reader never
guesses a dtype.
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import torch

from pytest_hfmodels.errors import WeightsFileError

FORMAT_VERSION = "1"
FORMAT_KEY = b"pytest_hfmodels.weights_format"
BYTE_ORDER_KEY = b"pytest_hfmodels.byte_order"
WEIGHTS_FILE = "weights.parquet"
METADATA_FILE = "metadata.json"
TOKENIZER_DIR = "tokenizer"

SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("shape", pa.list_(pa.int64()), nullable=False),
        pa.field("dtype", pa.string(), nullable=False),
        pa.field("num_params", pa.int64(), nullable=False),
        pa.field("chunk_index", pa.int32(), nullable=False),
        pa.field("num_chunks", pa.int32(), nullable=False),
        # the stored tensor this name shares storage with; null for a stored tensor
        pa.field("alias_of", pa.string()),
        # raw tensor bytes (this chunk's); null for an alias
        pa.field("data", pa.large_binary()),
    ],
    metadata={FORMAT_KEY: FORMAT_VERSION.encode(), BYTE_ORDER_KEY: b"little"},
)

_DTYPE_NAMES = (
    "float64", "float32", "float16", "bfloat16", "complex64", "complex128",
    "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "bool",
    "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu",
)  # fmt: skip
#: dtype name in the file -> torch dtype; only names this torch build has
TORCH_DTYPES: dict[str, torch.dtype] = {
    name: dtype for name in _DTYPE_NAMES if isinstance(dtype := getattr(torch, name, None), torch.dtype)
}
_DTYPE_NAMES_BY_DTYPE = {dtype: name for name, dtype in TORCH_DTYPES.items()}


def require_little_endian() -> None:
    # Tensor bytes are written and read in the machine's order; the file promises little-endian.
    if sys.byteorder != "little":
        raise WeightsFileError(
            f"Parquet weights files are little-endian; this machine is {sys.byteorder}-endian"
        )


def dtype_name(dtype: torch.dtype) -> str:
    try:
        return _DTYPE_NAMES_BY_DTYPE[dtype]
    except KeyError:
        raise WeightsFileError(f"dtype {dtype} has no name in the Parquet weights format") from None


def torch_dtype(name: str, *, where: str) -> torch.dtype:
    try:
        return TORCH_DTYPES[name]
    except KeyError:
        raise WeightsFileError(
            f"{where}: unknown dtype {name!r} (known: {', '.join(TORCH_DTYPES)}); refusing to guess"
        ) from None


def tensor_bytes(tensor: torch.Tensor) -> np.ndarray:
    """The tensor's bytes as a uint8 array; no copy when the tensor is contiguous on the CPU."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy()


def tensor_from_bytes(
    raw: np.ndarray, dtype: torch.dtype, shape: tuple[int, ...], *, where: str
) -> torch.Tensor:
    """A tensor over `raw` (uint8), sharing its memory when it is writable and aligned."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    expected = itemsize * _numel(shape)
    if raw.nbytes != expected:
        raise WeightsFileError(
            f"{where}: {raw.nbytes} bytes stored, {expected} expected for {dtype} {list(shape)}"
        )
    if not raw.flags.writeable:
        # Buffers over a memory map or the input file are read-only; torch needs writable memory.
        raw = raw.copy()
    flat = torch.from_numpy(raw)
    if itemsize > 1 and flat.data_ptr() % itemsize:
        flat = flat.clone()  # the allocator aligns fresh memory; misaligned views are unsafe for kernels
    return flat.view(dtype).reshape(shape)


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count
