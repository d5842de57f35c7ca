"""Write a state dict to a Parquet weights file (layout in `format`)."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from pytest_hfmodels.convert.parquet import thrift
from pytest_hfmodels.convert.parquet.format import (
    SCHEMA,
    VALUE_ALIGNMENT,
    copy_in_blocks,
    dtype_name,
    element_size,
    require_little_endian,
    tensor_bytes,
    value_page,
)
from pytest_hfmodels.errors import WeightsFileError

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
    the state dict is about two chunks (Parquet's page and its compressed copy) with a codec, and
    none without one (the writer writes the pages from the tensors), whatever the model; a float16
    copy adds one chunk.
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
            writer.write_rows(_alias_table(alias_rows))
    unique = [t for t in stored if t.alias_of is None]
    source_bytes = sum(state_dict[t.name].numel() * state_dict[t.name].element_size() for t in unique)
    return WrittenWeights(
        tensors=tuple(stored),
        stored_bytes=sum(t.num_bytes for t in unique),
        source_bytes=source_bytes,
        total_parameters=sum(t.num_params for t in unique),
    )


def writer_options(compression: str, compression_level: int) -> dict[str, Any]:
    """pyarrow.parquet.ParquetWriter's options for a weights file."""
    return {
        "compression": None if compression == "none" else compression,
        "compression_level": compression_level if compression == "zstd" else None,
        "use_dictionary": False,  # tensor bytes do not repeat; names are unique
        # name min/max per row group find a tensor; data stats are useless
        "write_statistics": ["name"],
        # readers verify, so a corrupted page is an error, not wrong weights
        "write_page_checksum": True,
        # no page index: it would repeat the sizes of the pages the writer writes itself
        "write_page_index": False,
    }


class _RowGroupWriter:
    """The file's ParquetWriter, one row group per write; in an uncompressed file, each value's page
    written here, aligned for mapping and without a copy.

    Arrow's column writer copies a value into its encoder and again into the page it writes (both in
    Arrow's memory at once): uncompressed, a chunk is a whole tensor, so the largest tensor would be
    held twice beyond the model (measured on bert-base: 188 MB for its 94 MB word embeddings, which
    made a validated uncompressed conversion peak at 1.56x the model). So Arrow writes each row
    group with an empty value, and the writer replaces that last page of the group with the value's:
    Arrow's header with the value's sizes and checksum, the same definition levels, the value's
    length, then its bytes straight from the tensor's memory. The footer Arrow writes when it closes
    counts the empty values; the writer then adds the difference to each column chunk and row group
    that grew. The file has the bytes Arrow would have written (tests compare them).

    The row group's layout comes from a dry run of the same writer on the same row (all bytes but
    the value's, so it costs nothing), which gives the padding that puts the value's first byte at a
    multiple of VALUE_ALIGNMENT (page headers hold sizes and checksums, never file offsets).
    """

    def __init__(self, path: Path, compression: str, compression_level: int) -> None:
        self._options = writer_options(compression, compression_level)
        self._path = path
        self._sink = pa.OSFile(str(path), "wb")
        try:
            self._writer = pq.ParquetWriter(self._sink, SCHEMA, **self._options)
        except BaseException:
            self._sink.close()
            raise
        self._writes_value_pages = compression == "none"
        self._row_groups = 0
        #: row group index -> (bytes its data page grew by, bytes of its value)
        self._grown: dict[int, tuple[int, int]] = {}

    def __enter__(self) -> _RowGroupWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        try:
            if exc_type is None and self._grown:
                footer_start = self._sink.tell()
                self._writer.close()
                self._correct_footer(footer_start)
            else:
                self._writer.close()
        finally:
            self._sink.close()

    def write_rows(self, table: pa.Table) -> None:
        """`table` as one row group (rows whose data is null: aliases)."""
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self._row_groups += 1

    def write_value(self, columns: list[pa.Array], value: np.ndarray) -> None:
        """One row as its own row group: `columns` (every column but `data`, one value each) and
        `value` (uint8), its data."""
        if not self._writes_value_pages:
            self.write_rows(_row(columns, _binary_without_copy(value)))
            return
        row = _row(columns, pa.array([b""], pa.large_binary()))
        layout = _StandIn(row, self._options)
        levels = layout.payload[:-4]  # the empty value's payload: its levels, then its length, 0
        prefix = levels + struct.pack("<I", value.nbytes)
        payload_bytes = len(prefix) + value.nbytes
        if payload_bytes > _INT32_MAX:
            raise WeightsFileError(f"a page of {payload_bytes} bytes is beyond Parquet's {_INT32_MAX}")
        header = layout.header
        header[2].value = header[3].value = payload_bytes  # uncompressed_page_size, compressed_page_size
        if 4 in header:  # crc: a signed 32-bit field
            crc = zlib.crc32(value.data, zlib.crc32(prefix))
            header[4].value = crc - (1 << 32) if crc >= 1 << 31 else crc
        head = thrift.encode_struct(header) + prefix
        value_start = self._sink.tell() + layout.page_offset + len(head)
        self._sink.write(bytes(-value_start % VALUE_ALIGNMENT))
        start = self._sink.tell()
        self._writer.write_table(row)
        if self._sink.tell() - start != layout.row_group_bytes:
            raise WeightsFileError(f"{self._path}: Parquet wrote a row group unlike its dry run")
        # The empty value's page ends the row group: it is replaced where it starts.
        page_start = start + layout.page_offset
        os.ftruncate(self._sink.fileno(), page_start)
        os.lseek(self._sink.fileno(), page_start, os.SEEK_SET)
        self._sink.write(head)
        self._sink.write(value)  # from the tensor's memory, no copy
        grown = len(head) + value.nbytes - (layout.row_group_bytes - layout.page_offset)
        self._grown[self._row_groups] = (grown, value.nbytes)
        self._row_groups += 1

    def _correct_footer(self, footer_start: int) -> None:
        """Rewrite the footer Arrow wrote at `footer_start` with the sizes of the grown pages."""
        with self._path.open("rb") as stream:
            stream.seek(footer_start)
            tail = stream.read()
        (size,) = struct.unpack_from("<I", tail, len(tail) - 8)
        if tail[-4:] != b"PAR1" or size != len(tail) - 8:
            raise WeightsFileError(f"{self._path}: the footer is not where the writer left it")
        metadata, _ = thrift.decode_struct(tail[:size])
        row_groups = thrift.children(metadata, 4)  # FileMetaData.row_groups
        for index, (grown, value_bytes) in self._grown.items():
            group = row_groups[index]
            [column] = [
                chunk
                for chunk in (thrift.child(c, 3) for c in thrift.children(group, 1))  # ColumnChunk.meta_data
                if chunk is not None and 3 in chunk and chunk[3].value.items == [b"data"]  # path_in_schema
            ]
            thrift.add(column, 6, grown)  # total_uncompressed_size
            thrift.add(column, 7, grown)  # total_compressed_size
            size_statistics = thrift.child(column, 16)
            if size_statistics is not None:
                thrift.add(size_statistics, 1, value_bytes)  # unencoded_byte_array_data_bytes
            thrift.add(group, 2, grown)  # total_byte_size
            thrift.add(group, 6, grown)  # total_compressed_size
        footer = thrift.encode_struct(metadata)
        os.ftruncate(self._sink.fileno(), footer_start)
        os.lseek(self._sink.fileno(), footer_start, os.SEEK_SET)
        self._sink.write(footer + struct.pack("<I", len(footer)) + b"PAR1")


#: Parquet's page sizes are signed 32-bit
_INT32_MAX = 2**31 - 1


class _StandIn:
    """The bytes of a row group whose value is empty, from a dry run: where its last page (the
    value's) starts, its header and its payload."""

    def __init__(self, row: pa.Table, options: dict[str, Any]) -> None:
        stream = pa.BufferOutputStream()
        with pq.ParquetWriter(stream, SCHEMA, **options) as dry_run:
            start = stream.tell()  # after the file's leading magic bytes
            dry_run.write_table(row)
            end = stream.tell()
        row_group = stream.getvalue().to_pybytes()[start:end]
        self.row_group_bytes = len(row_group)
        position = page = 0
        while position < len(row_group):  # one page per column chunk: the value's is the last
            page = position
            header, position = thrift.decode_struct(row_group, position)
            position += thrift.integer(header, 3) or 0  # compressed_page_size
        self.page_offset = page
        self.header, payload_offset = thrift.decode_struct(row_group, page)
        self.payload = row_group[payload_offset:]
        found = value_page(row_group[page:], len(row_group) - page)
        data_page = thrift.child(self.header, 5)
        if found is None or found.value_bytes or data_page is None or thrift.child(data_page, 5):
            # not one uncompressed page of one value, without statistics (Arrow writes them empty):
            # a page whose value could not be swapped in
            raise WeightsFileError("Parquet laid out a weights row group unlike the format's")


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
        columns = [
            pa.array([name], pa.string()),
            pa.array([list(tensor.shape)], pa.list_(pa.int64())),
            pa.array([dtype_name(dtype)], pa.string()),
            pa.array([tensor.numel()], pa.int64()),
            pa.array([index], pa.int32()),
            pa.array([len(starts)], pa.int32()),
            pa.nulls(1, pa.string()),
        ]
        writer.write_value(columns, chunk)
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


def _row(columns: list[pa.Array], data: pa.Array) -> pa.Table:
    return pa.Table.from_arrays([*columns, data], schema=SCHEMA)


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
