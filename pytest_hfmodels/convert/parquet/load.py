"""Read tensors back from a Parquet weights file: all of them, or one without reading the rest.

Bytes go Arrow buffer -> numpy (np.frombuffer) -> torch (from_numpy) without copies; the only copy
is Parquet's own decoding into Arrow memory, plus the join of a tensor stored in several chunks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pytest_hfmodels.convert.parquet.format import (
    FORMAT_KEY,
    FORMAT_VERSION,
    SCHEMA,
    require_little_endian,
    tensor_from_bytes,
    torch_dtype,
)
from pytest_hfmodels.errors import WeightsFileError

WeightsSource = str | os.PathLike[str] | BinaryIO


@dataclass(frozen=True)
class _Row:
    name: str
    shape: tuple[int, ...]
    dtype: str
    chunk_index: int
    num_chunks: int
    alias_of: str | None
    data: np.ndarray | None


def load_parquet_weights(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Every tensor of the file by name; tied names map to the same tensor object.

    `dtype` converts floating-point tensors only: integer and bool tensors (ids, masks) keep theirs.
    """
    return dict(iter_parquet_weights(path, device, dtype))


def iter_parquet_weights(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """The tensors one at a time in file order, so a consumer can hold one at a time.

    A tied name comes right after the tensor it aliases, as the same tensor object.
    """
    where = str(path)
    with _open(path) as parquet:
        aliases = _aliases_by_target(parquet, where)
        pending: dict[str, list[_Row]] = {}
        for index in range(parquet.metadata.num_row_groups):
            for row in _rows(_read_row_group(parquet, index, where)):
                if row.alias_of is not None:
                    continue  # yielded with its target
                chunks = pending.setdefault(row.name, [])
                chunks.append(row)
                if len(chunks) < row.num_chunks:
                    continue  # the writer puts a tensor's chunks in consecutive row groups
                del pending[row.name]
                tensor = _finish(_assemble(chunks, where), device, dtype)
                yield row.name, tensor
                for alias in aliases.pop(row.name, []):
                    yield alias, tensor
        if pending:
            raise WeightsFileError(f"{where}: chunks missing for {', '.join(sorted(pending))}")
        if aliases:
            missing = ", ".join(f"{a!r} -> {t!r}" for t, names in sorted(aliases.items()) for a in names)
            raise WeightsFileError(f"{where}: aliases of tensors the file does not hold: {missing}")


def _aliases_by_target(parquet: pq.ParquetFile, where: str) -> dict[str, list[str]]:
    # Two small columns of every row group; the data column is not read.
    try:
        table = parquet.read(columns=["name", "alias_of"])
    except (OSError, pa.ArrowException) as exc:
        raise WeightsFileError(f"{where}: cannot read names: {exc}") from exc
    aliases: dict[str, list[str]] = {}
    for name, target in zip(
        table.column("name").to_pylist(), table.column("alias_of").to_pylist(), strict=True
    ):
        if target is not None:
            aliases.setdefault(target, []).append(name)
    return aliases


def get_layer(
    source: WeightsSource, name: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> torch.Tensor:
    """One tensor, reading only the footer and the row groups whose `name` statistics may hold it."""
    where = str(getattr(source, "name", source))
    with _open(source) as parquet:  # closes only a file it opened itself, never the caller's
        rows = _find(parquet, name, where)
        if len(rows) == 1 and rows[0].alias_of is not None:
            target = rows[0].alias_of
            rows = _find(parquet, target, where)
            if not rows or rows[0].alias_of is not None:
                raise WeightsFileError(
                    f"{where}: {name!r} is an alias of {target!r}, which the file does not hold"
                )
        return _finish(_assemble(rows, where), device, dtype)


def _open(source: WeightsSource) -> pq.ParquetFile:
    require_little_endian()
    where = str(getattr(source, "name", source))
    try:
        parquet = pq.ParquetFile(source, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise WeightsFileError(f"{where}: not a readable Parquet file: {exc}") from exc
    metadata = parquet.schema_arrow.metadata or {}
    if metadata.get(FORMAT_KEY) != FORMAT_VERSION.encode():
        raise WeightsFileError(
            f"{where}: not a weights file of format {FORMAT_VERSION} (schema key {FORMAT_KEY.decode()} is "
            f"{metadata.get(FORMAT_KEY)!r})"
        )
    missing = [f.name for f in SCHEMA if f.name not in parquet.schema_arrow.names]
    if missing:
        raise WeightsFileError(f"{where}: weights file lacks the columns {', '.join(missing)}")
    return parquet


def _read_row_group(parquet: pq.ParquetFile, index: int, where: str) -> pa.Table:
    try:
        return parquet.read_row_group(index, columns=SCHEMA.names)
    except (OSError, pa.ArrowException) as exc:  # checksum, decompression or decoding failures
        raise WeightsFileError(f"{where}: row group {index} is corrupt: {exc}") from exc


def _find(parquet: pq.ParquetFile, name: str, where: str) -> list[_Row]:
    metadata = parquet.metadata
    name_column = parquet.schema_arrow.get_field_index("name")
    rows: list[_Row] = []
    for index in range(metadata.num_row_groups):
        stats = metadata.row_group(index).column(name_column).statistics
        # No statistics (another writer): the group may hold the name and must be read.
        if stats is not None and stats.has_min_max and not stats.min <= name <= stats.max:
            continue
        rows.extend(row for row in _rows(_read_row_group(parquet, index, where)) if row.name == name)
    if not rows:
        raise WeightsFileError(f"{where}: no tensor named {name!r}")
    return rows


def _rows(table: pa.Table) -> Iterator[_Row]:
    columns = {name: table.column(name).to_pylist() for name in SCHEMA.names if name != "data"}
    values = _binary_values(table.column("data"))
    for i, name in enumerate(columns["name"]):
        yield _Row(
            name=name,
            shape=tuple(columns["shape"][i]),
            dtype=columns["dtype"][i],
            chunk_index=columns["chunk_index"][i],
            num_chunks=columns["num_chunks"][i],
            alias_of=columns["alias_of"][i],
            data=values[i],
        )


def _binary_values(column: pa.ChunkedArray) -> list[np.ndarray | None]:
    """Each binary value as a numpy view of the Arrow data buffer (no copy); None for nulls."""
    values: list[np.ndarray | None] = []
    for array in column.chunks:
        validity_buffer, offsets_buffer, data_buffer = array.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int64, count=len(array) + 1, offset=array.offset * 8)
        valid = np.ones(len(array), dtype=bool)
        if array.null_count:  # read the bitmap: indexing the array would copy each value into a scalar
            bits = np.unpackbits(np.frombuffer(validity_buffer, dtype=np.uint8), bitorder="little")
            valid = bits[array.offset : array.offset + len(array)].astype(bool)
        for i in range(len(array)):
            start, stop = int(offsets[i]), int(offsets[i + 1])
            if not valid[i]:
                values.append(None)
            elif data_buffer is None or start == stop:
                values.append(np.empty(0, dtype=np.uint8))
            else:
                values.append(np.frombuffer(data_buffer, dtype=np.uint8, count=stop - start, offset=start))
    return values


def _assemble(rows: list[_Row], where: str) -> torch.Tensor:
    first = rows[0]
    label = f"{where}: tensor {first.name!r}"
    if any(r.alias_of is not None for r in rows):
        raise WeightsFileError(f"{label}: stored both as an alias and as data")
    ordered = sorted(rows, key=lambda r: r.chunk_index)
    if [r.chunk_index for r in ordered] != list(range(first.num_chunks)):
        found = [r.chunk_index for r in ordered]
        raise WeightsFileError(f"{label}: chunks {found} found, {first.num_chunks} expected")
    if any((r.shape, r.dtype) != (first.shape, first.dtype) or r.data is None for r in ordered):
        raise WeightsFileError(f"{label}: chunks disagree on shape or dtype, or lack data")
    dtype = torch_dtype(first.dtype, where=label)
    pieces = [r.data for r in ordered if r.data is not None]
    if len(pieces) == 1:
        return tensor_from_bytes(pieces[0], dtype, first.shape, where=label)
    # A tensor over the chunk size cannot be one Arrow value: joining the chunks is its one copy.
    joined = np.empty(sum(p.nbytes for p in pieces), dtype=np.uint8)
    position = 0
    for piece in pieces:
        joined[position : position + piece.nbytes] = piece
        position += piece.nbytes
    return tensor_from_bytes(joined, dtype, first.shape, where=label)


def _finish(tensor: torch.Tensor, device: str | torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor.to(device)
