"""Write a state dict to a Parquet weights file (layout in `format`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from pytest_hfmodels.convert.parquet.format import (
    SCHEMA,
    VALUE_ALIGNMENT,
    copy_in_blocks,
    dtype_name,
    element_size,
    require_little_endian,
    tensor_bytes,
)

#: dtypes narrowed to float16 when float16 storage is asked for; bfloat16 is kept because
#: float16 cannot hold its range, and integer tensors (ids, masks) must stay exact
FLOAT16_SOURCES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class StoredTensor:
    """One state-dict entry as written: a stored tensor, or an alias of one."""

    name: str
    shape: tuple[int, ...]
    source_dtype: str
    dtype: str
    num_params: int
    num_bytes: int
    num_chunks: int
    alias_of: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "source_dtype": self.source_dtype,
            "dtype": self.dtype,
            "num_params": self.num_params,
            "num_bytes": self.num_bytes,
            "num_chunks": self.num_chunks,
            "alias_of": self.alias_of,
        }


@dataclass(frozen=True)
class WrittenWeights:
    """What `write_weights` stored; bytes counted before compression."""

    tensors: tuple[StoredTensor, ...]
    #: bytes of the stored tensors (after any float16 narrowing), aliases not counted
    stored_bytes: int
    #: bytes the same tensors had in their source dtypes
    source_bytes: int
    #: elements of the stored tensors, aliases not counted
    total_parameters: int

    @property
    def aliases(self) -> dict[str, str]:
        return {t.name: t.alias_of for t in self.tensors if t.alias_of is not None}


def find_aliases(state_dict: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Names that view exactly the same memory as an earlier name (tied weights) -> that name."""
    first_name: dict[tuple[Any, ...], str] = {}
    aliases: dict[str, str] = {}
    for name, tensor in state_dict.items():
        if tensor.numel() == 0:
            continue  # empty tensors share no bytes worth deduplicating
        view = view_key(tensor)
        if view in first_name:
            aliases[name] = first_name[view]
        else:
            first_name[view] = name
    return aliases


def view_key(tensor: torch.Tensor) -> tuple[Any, ...]:
    """Equal for two tensors exactly when they view the same elements of the same memory."""
    return (
        tensor.device,
        tensor.untyped_storage().data_ptr(),
        tensor.storage_offset(),
        tuple(tensor.shape),
        tuple(tensor.stride()),
        tensor.dtype,
    )


def stored_dtype(dtype: torch.dtype, use_float16: bool) -> torch.dtype:
    return torch.float16 if use_float16 and dtype in FLOAT16_SOURCES else dtype


def write_weights(
    state_dict: Mapping[str, torch.Tensor],
    path: Path,
    *,
    compression: str,
    compression_level: int,
    use_float16: bool,
    max_chunk_bytes: int,
    show_progress: bool,
) -> WrittenWeights:
    """Write every tensor of `state_dict` to `path`, tied tensors once; `path` must not be in use.

    Tensors go to the file one chunk at a time and nothing is kept, so the memory this needs beyond
    the state dict is about two chunks (Parquet's page and its compressed copy), whatever the model.
    """
    require_little_endian()
    aliases = find_aliases(state_dict)
    stored: list[StoredTensor] = []
    with _RowGroupWriter(path, compression, compression_level) as writer:
        with tqdm(total=len(state_dict), unit="tensor", desc="parquet", disable=not show_progress) as bar:
            for name, tensor in state_dict.items():
                if name in aliases:
                    stored.append(_alias(name, tensor, aliases[name], use_float16))
                else:
                    stored.append(_write_tensor(writer, name, tensor, use_float16, max_chunk_bytes))
                bar.update(1)
        alias_rows = [t for t in stored if t.alias_of is not None]
        if alias_rows:
            writer.write(_alias_table(alias_rows), value_bytes=None)
    unique = [t for t in stored if t.alias_of is None]
    source_bytes = sum(state_dict[t.name].numel() * state_dict[t.name].element_size() for t in unique)
    return WrittenWeights(
        tensors=tuple(stored),
        stored_bytes=sum(t.num_bytes for t in unique),
        source_bytes=source_bytes,
        total_parameters=sum(t.num_params for t in unique),
    )


class _RowGroupWriter:
    """The file's ParquetWriter, one row group per `write`; uncompressed values aligned for mapping.

    A tensor's bytes end their row group (the last column's one page), so the padding that puts
    their first byte at a multiple of VALUE_ALIGNMENT follows from the row group's size, which a dry
    run into a stream that only counts bytes gives exactly (page headers hold sizes and checksums,
    never file offsets). The dry run costs a memory copy and a checksum of the chunk, no disk.
    """

    def __init__(self, path: Path, compression: str, compression_level: int) -> None:
        options: dict[str, Any] = {
            "compression": None if compression == "none" else compression,
            "compression_level": compression_level if compression == "zstd" else None,
            "use_dictionary": False,  # tensor bytes do not repeat; names are unique
            # name min/max per row group find a tensor; data stats are useless
            "write_statistics": ["name"],
            # readers verify, so a corrupted page is an error, not wrong weights
            "write_page_checksum": True,
        }
        self._sink = pa.OSFile(str(path), "wb")
        try:
            self._writer = pq.ParquetWriter(self._sink, SCHEMA, **options)
        except BaseException:
            self._sink.close()
            raise
        self._dry_run_options = options if compression == "none" else None

    def __enter__(self) -> _RowGroupWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._writer.close()
        finally:
            self._sink.close()

    def write(self, table: pa.Table, value_bytes: int | None) -> None:
        """Write `table` as one row group; `value_bytes`: the size of its one value, to align."""
        if self._dry_run_options is not None and value_bytes is not None:
            size = _row_group_bytes(table, self._dry_run_options)
            value_start = self._sink.tell() + size - value_bytes
            self._sink.write(bytes(-value_start % VALUE_ALIGNMENT))
        self._writer.write_table(table)


def _row_group_bytes(table: pa.Table, options: dict[str, Any]) -> int:
    counter = pa.MockOutputStream()
    # A writer of its own, closed at once: a writer left open holds its last row group's buffers
    # (measured: a second copy of the chunk through the real write).
    with pq.ParquetWriter(counter, SCHEMA, **options) as dry_run:
        start = counter.tell()  # after the file's leading magic bytes
        dry_run.write_table(table)
        return int(counter.tell() - start)


def _alias(name: str, tensor: torch.Tensor, target: str, use_float16: bool) -> StoredTensor:
    dtype = stored_dtype(tensor.dtype, use_float16)
    return StoredTensor(
        name=name,
        shape=tuple(tensor.shape),
        source_dtype=dtype_name(tensor.dtype),
        dtype=dtype_name(dtype),
        num_params=tensor.numel(),
        num_bytes=0,
        num_chunks=0,
        alias_of=target,
    )


def _write_tensor(
    writer: _RowGroupWriter, name: str, tensor: torch.Tensor, use_float16: bool, max_chunk_bytes: int
) -> StoredTensor:
    dtype = stored_dtype(tensor.dtype, use_float16)
    flat = tensor.detach().reshape(-1)  # a view of a contiguous tensor (a copy of any other)
    # Whole elements per chunk (at least one), so each chunk can be checked and restored on its own.
    per_chunk = max(1, max_chunk_bytes // element_size(dtype))
    starts = list(range(0, flat.numel(), per_chunk)) or [0]
    for index, start in enumerate(starts):
        # Narrowed a chunk at a time: the float16 copy is never more than one chunk.
        chunk = tensor_bytes(_converted(flat[start : start + per_chunk], dtype))
        # one row per write: one row group per chunk, read back on its own
        writer.write(
            pa.Table.from_arrays(
                [
                    pa.array([name], pa.string()),
                    pa.array([list(tensor.shape)], pa.list_(pa.int64())),
                    pa.array([dtype_name(dtype)], pa.string()),
                    pa.array([tensor.numel()], pa.int64()),
                    pa.array([index], pa.int32()),
                    pa.array([len(starts)], pa.int32()),
                    pa.nulls(1, pa.string()),
                    _binary_without_copy(chunk),
                ],
                schema=SCHEMA,
            ),
            value_bytes=chunk.nbytes,
        )
        del chunk  # the float16 copy of this chunk goes before the next is made
    return StoredTensor(
        name=name,
        shape=tuple(tensor.shape),
        source_dtype=dtype_name(tensor.dtype),
        dtype=dtype_name(dtype),
        num_params=tensor.numel(),
        num_bytes=tensor.numel() * element_size(dtype),
        num_chunks=len(starts),
    )


def _converted(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if values.dtype == dtype:
        return values  # written as it is: no copy
    converted = torch.empty(values.shape, dtype=dtype)
    copy_in_blocks(converted, values.cpu())
    return converted


def _binary_without_copy(raw: np.ndarray) -> pa.Array:
    # pa.array([bytes]) would copy the tensor; an array built over its buffer does not.
    offsets = pa.py_buffer(np.array([0, raw.nbytes], dtype=np.int64))
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(raw)])


def _alias_table(rows: list[StoredTensor]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "name": [t.name for t in rows],
            "shape": [list(t.shape) for t in rows],
            "dtype": [t.dtype for t in rows],
            "num_params": [t.num_params for t in rows],
            "chunk_index": [0] * len(rows),
            "num_chunks": [0] * len(rows),
            "alias_of": [t.alias_of for t in rows],
            "data": [None] * len(rows),
        },
        schema=SCHEMA,
    )
