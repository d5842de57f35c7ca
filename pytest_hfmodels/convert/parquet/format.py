"""The layout of a Parquet weights file, shared by the writer and the readers.

One row per tensor, or per chunk of a tensor, and one row group per such row, so a reader fetches one
tensor's bytes without touching the others (row-group statistics on `name` say which group holds which
tensor). Chunks split a tensor at element boundaries, in order, in consecutive row groups. Tied tensors
get one row with `alias_of` set and no data. Tensor bytes are stored raw, little-endian, under their
exact torch dtype name; a reader never guesses a dtype.

In an uncompressed file a tensor's bytes lie in the file as they are, at the end of their row group's
one data page; the writer pads between row groups so they start at a multiple of VALUE_ALIGNMENT, and
`value_page` finds them there, so a reader can map them instead of copying them. Padding between row
groups is plain Parquet: readers find every column chunk by its offset in the footer.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from pytest_hfmodels.convert.parquet import thrift
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


def element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


#: elements per torch operation in element-wise passes over weights: under torch's parallel grain size
#: (32768), so each runs on the calling thread. Whole-chunk operations fan out to worker threads and
#: wait for them; on a busy machine that measured 15x slower (a 2M-element float16 -> float32 copy:
#: 11 ms whole, 0.7 ms in these blocks; 185 ms in blocks of 4x this size), and small blocks stay in
#: the cache.
BLOCK_ELEMENTS = 1 << 15


def copy_in_blocks(destination: torch.Tensor, source: torch.Tensor) -> None:
    """destination.copy_(source) for 1-D tensors of one length, BLOCK_ELEMENTS at a time."""
    for start in range(0, source.numel(), BLOCK_ELEMENTS):
        destination[start : start + BLOCK_ELEMENTS].copy_(source[start : start + BLOCK_ELEMENTS])


def piece_tensor(raw: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A 1-D `dtype` tensor over `raw` (uint8, a whole number of elements), sharing its memory when
    it is writable and aligned: a read-only buffer (torch needs writable memory) or a misaligned one
    (the allocator aligns fresh memory; misaligned views are unsafe for kernels) is copied."""
    if not raw.flags.writeable:
        raw = raw.copy()
    flat = torch.from_numpy(raw)
    if flat.data_ptr() % element_size(dtype):
        flat = flat.clone()
    return flat.view(dtype)


def tensor_from_bytes(
    raw: np.ndarray, dtype: torch.dtype, shape: tuple[int, ...], *, where: str
) -> torch.Tensor:
    """A tensor over `raw` (uint8), sharing its memory when it is writable and aligned."""
    expected = element_size(dtype) * numel(shape)
    if raw.nbytes != expected:
        raise WeightsFileError(
            f"{where}: {raw.nbytes} bytes stored, {expected} expected for {dtype} {list(shape)}"
        )
    return piece_tensor(raw, dtype).reshape(shape)


def numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


#: where the writer puts the first byte of each tensor value in an uncompressed file: a multiple of
#: every element size, and of a cache line and the widest SIMD register, so a mapped tensor is as
#: aligned as one torch allocated
VALUE_ALIGNMENT = 64

_DATA_PAGE = 0  # parquet.thrift PageType.DATA_PAGE (version 1, the writer's default)
_PLAIN = 0  # parquet.thrift Encoding.PLAIN
_RLE = 3  # parquet.thrift Encoding.RLE
#: bytes read to find a value page's header: ~30 with the writer's options (no statistics on data)
PAGE_HEAD_BYTES = 512


@dataclass(frozen=True)
class ValuePage:
    """Where one stored value lies in an uncompressed column chunk of one data page holding one value.

    Offsets count from the column chunk's start (its data page offset)."""

    #: the page's bytes after its header: what its checksum covers
    payload_offset: int
    payload_bytes: int
    #: CRC-32 of the payload (unsigned), None when the writer stored none
    crc: int | None
    value_offset: int
    value_bytes: int


def value_page(head: bytes, chunk_bytes: int) -> ValuePage | None:
    """The layout of an uncompressed column chunk whose first bytes are `head`; None unless it is one
    version-1 data page holding one non-null PLAIN binary value (what the writer makes), so a caller
    falls back to a full Parquet reader for anything else."""
    try:
        header, position = thrift.decode_struct(head)
    except (IndexError, ValueError):
        return None  # a header longer than `head`, or not Thrift at all
    page = thrift.child(header, 5)  # data_page_header
    size = thrift.integer(header, 3)  # compressed_page_size
    if (
        thrift.integer(header, 1) != _DATA_PAGE
        or size is None
        or thrift.integer(header, 2) != size  # uncompressed_page_size
        or position + size != chunk_bytes
        or page is None
        # num_values, encoding, definition_level_encoding
        or (thrift.integer(page, 1), thrift.integer(page, 2), thrift.integer(page, 3)) != (1, _PLAIN, _RLE)
    ):
        return None
    # payload: definition levels (4-byte length, then RLE/bit-packed runs), then the value's 4-byte
    # length and bytes; no repetition levels (a flat column)
    if len(head) < position + 4:
        return None
    (levels_bytes,) = struct.unpack_from("<I", head, position)
    value_offset = position + 4 + levels_bytes + 4
    if levels_bytes < 2 or len(head) < value_offset or not _first_level_is_one(head, position + 4):
        return None
    (value_bytes,) = struct.unpack_from("<I", head, value_offset - 4)
    if value_offset + value_bytes != chunk_bytes:
        return None
    crc = thrift.integer(header, 4)
    return ValuePage(
        payload_offset=position,
        payload_bytes=chunk_bytes - position,
        crc=None if crc is None else crc & 0xFFFFFFFF,
        value_offset=value_offset,
        value_bytes=value_bytes,
    )


def _first_level_is_one(data: bytes, position: int) -> bool:
    # One level of bit width 1: an RLE run (header even, then the value byte) or bit-packed groups
    # (header odd, then the bits, first level in the lowest bit).
    run_header, position = thrift.varint(data, position)
    return bool(data[position] & 1) if run_header else False
