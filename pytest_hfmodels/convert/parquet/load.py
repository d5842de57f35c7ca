"""Read tensors back from a Parquet weights file: all of them, or one without reading the rest.

One row group at a time. In an uncompressed file a tensor's bytes are mapped from the file (each
chunk its own copy-on-write mapping, released with the last tensor over it), after the page checksum
is verified: no copy, and the pages count against the process only while a tensor uses them. A
consumer that reads each piece once (validation) can have a mapped chunk in windows whose pages
leave the process as it moves on, the checksum's pass included, so it holds one window of the file,
not its largest tensor (`iter_pieces`). In a compressed file Parquet decodes a row group into Arrow
memory, and bytes go Arrow buffer -> numpy -> torch without further copies; a tensor stored in
several chunks is copied into one buffer as its chunks arrive, so reading costs one chunk's decoding
beyond the tensors returned.

A mapped tensor reads the file lazily: changing or truncating the file while it is in use changes or
faults its values, as with any memory-mapped weights (safetensors included).
"""

from __future__ import annotations

import mmap
import os
import zlib
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
    PAGE_HEAD_BYTES,
    SCHEMA,
    element_size,
    numel,
    require_little_endian,
    tensor_from_bytes,
    torch_dtype,
    value_page,
)
from pytest_hfmodels.errors import WeightsFileError

WeightsSource = str | os.PathLike[str] | BinaryIO

#: every column but the tensor bytes: read through Arrow, they are small
_SMALL_COLUMNS = [name for name in SCHEMA.names if name != "data"]


@dataclass(frozen=True)
class StoredRow:
    """One row of the file: a tensor's chunk (`data`, uint8) or an alias (`alias_of`, no data)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    chunk_index: int
    num_chunks: int
    alias_of: str | None
    data: np.ndarray | None
    #: where `data` is mapped from the file: the mapping
    mapped: _Mapping | None = None


@dataclass(frozen=True)
class Piece:
    """A tensor's chunk in order: its bytes start at `offset` bytes into the tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    offset: int
    data: np.ndarray
    #: the tensor's last chunk
    last: bool


@dataclass(frozen=True)
class Alias:
    """`name` is stored as `alias_of`, whose last piece came just before."""

    name: str
    alias_of: str


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
    joining: dict[str, np.ndarray] = {}
    last: tuple[str, torch.Tensor] | None = None
    for item in iter_pieces(path):
        if isinstance(item, Alias):
            assert last is not None and last[0] == item.alias_of  # iter_pieces yields them so
            yield item.name, last[1]
            continue
        if item.offset == 0 and item.last:  # one chunk: the tensor is its bytes, mapped or decoded
            tensor = tensor_from_bytes(item.data, item.dtype, item.shape, where=f"{path}: {item.name!r}")
        else:  # several: one buffer, filled as they come (iter_pieces checked offsets and sizes)
            if item.offset == 0:
                joining[item.name] = _buffer(element_size(item.dtype) * numel(item.shape))
            buffer = joining[item.name]
            buffer[item.offset : item.offset + item.data.nbytes] = item.data
            if not item.last:
                continue
            del joining[item.name]
            tensor = tensor_from_bytes(buffer, item.dtype, item.shape, where=f"{path}: {item.name!r}")
        last = (item.name, _finish(tensor, device, dtype))
        yield last


def iter_pieces(path: str | os.PathLike[str], *, release_as_read: bool = False) -> Iterator[Piece | Alias]:
    """Every tensor's chunks in order, one row group read at a time, each alias after its target.

    Nothing is assembled: a consumer that checks or copies chunk by chunk holds one at a time. A file
    whose chunks disagree (shape, dtype, count, sizes) or which lacks some is an error; chunks of
    one tensor may come in any order (the writer's come in order and are passed on as they come).

    With `release_as_read`, a mapped chunk comes as pieces of MAPPED_WINDOW_BYTES (whole elements),
    and a piece's pages leave the process when the next item is asked for (as do those its checksum
    read), so a consumer holds one window of the file, not a whole tensor: for consumers that keep no
    piece and never write one (what is written into a released page is lost).
    """
    where = str(path)
    with _WeightsFile(path) as weights:
        aliases = weights.aliases_by_target()
        tensors: dict[str, _Chunks] = {}
        for index in range(weights.num_row_groups):
            for row in weights.rows(index, release_as_read):
                if row.alias_of is not None:
                    continue  # yielded after its target
                chunks = tensors.get(row.name)
                if chunks is None:
                    chunks = tensors[row.name] = _Chunks(row, where)
                for piece in chunks.add(row):
                    if release_as_read and row.mapped is not None and piece.data is row.data:
                        yield from _windows(piece, row.mapped)
                    else:
                        yield piece
                if chunks.complete:
                    del tensors[row.name]
                    yield from (Alias(alias, row.name) for alias in aliases.pop(row.name, []))
        if tensors:
            raise WeightsFileError(f"{where}: chunks missing for {', '.join(sorted(tensors))}")
        if aliases:
            missing = ", ".join(f"{a!r} -> {t!r}" for t, names in sorted(aliases.items()) for a in names)
            raise WeightsFileError(f"{where}: aliases of tensors the file does not hold: {missing}")


def get_layer(
    source: WeightsSource, name: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> torch.Tensor:
    """One tensor, reading only the footer and the row groups whose `name` statistics may hold it.

    A path is mapped where the file is uncompressed; an open file is only read through.
    """
    where = str(getattr(source, "name", source))
    with _WeightsFile(source) as weights:  # closes only a file it opened itself, never the caller's
        rows = weights.find(name)
        if len(rows) == 1 and rows[0].alias_of is not None:
            target = rows[0].alias_of
            rows = weights.find(target)
            if not rows or rows[0].alias_of is not None:
                raise WeightsFileError(
                    f"{where}: {name!r} is an alias of {target!r}, which the file does not hold"
                )
        if any(r.alias_of is not None for r in rows):
            raise WeightsFileError(f"{where}: tensor {name!r}: stored both as an alias and as data")
        chunks = _Chunks(rows[0], where)
        pieces = [piece for row in rows for piece in chunks.add(row)]
        if not chunks.complete:
            raise WeightsFileError(
                f"{where}: tensor {name!r}: chunks {sorted(r.chunk_index for r in rows)} found, "
                f"{rows[0].num_chunks} expected"
            )
        if len(pieces) == 1:
            tensor = tensor_from_bytes(pieces[0].data, chunks.dtype, rows[0].shape, where=chunks.label)
        else:
            # A tensor stored in several chunks is not one run of bytes: joining them is its one copy.
            joined = _buffer(sum(p.data.nbytes for p in pieces))
            for piece in pieces:
                joined[piece.offset : piece.offset + piece.data.nbytes] = piece.data
            tensor = tensor_from_bytes(joined, chunks.dtype, rows[0].shape, where=chunks.label)
        return _finish(tensor, device, dtype)


def _windows(piece: Piece, mapped: _Mapping) -> Iterator[Piece]:
    """`piece`, a mapped value, as pieces of at most MAPPED_WINDOW_BYTES, each released once the
    consumer asks for the next."""
    step = max(1, MAPPED_WINDOW_BYTES // element_size(piece.dtype)) * element_size(piece.dtype)
    size = piece.data.nbytes
    for start in range(0, max(size, 1), step):
        stop = min(start + step, size)
        yield Piece(
            piece.name, piece.shape, piece.dtype, piece.offset + start, piece.data[start:stop],
            piece.last and stop == size,
        )  # fmt: skip
        mapped.release(start, stop)


class _Chunks:
    """One tensor's chunks as they arrive: each checked against the first, passed on in order."""

    def __init__(self, first: StoredRow, where: str) -> None:
        self.label = f"{where}: tensor {first.name!r}"
        self.first = first
        self.dtype = torch_dtype(first.dtype, where=self.label)
        self.total = element_size(self.dtype) * numel(first.shape)
        self.next_index = 0
        self.offset = 0
        self.early: dict[int, np.ndarray] = {}  # chunks that came before their predecessors

    @property
    def complete(self) -> bool:
        return self.next_index == self.first.num_chunks

    def add(self, row: StoredRow) -> Iterator[Piece]:
        first = self.first
        if row.alias_of is not None:
            raise WeightsFileError(f"{self.label}: stored both as an alias and as data")
        if (row.shape, row.dtype, row.num_chunks) != (first.shape, first.dtype, first.num_chunks) or (
            row.data is None
        ):
            raise WeightsFileError(f"{self.label}: chunks disagree on shape or dtype, or lack data")
        if not self.next_index <= row.chunk_index < first.num_chunks or row.chunk_index in self.early:
            raise WeightsFileError(
                f"{self.label}: chunk {row.chunk_index} is repeated or beyond its {first.num_chunks}"
            )
        self.early[row.chunk_index] = row.data
        while self.next_index in self.early:
            data = self.early.pop(self.next_index)
            self.next_index += 1
            stored = self.offset + data.nbytes
            if stored > self.total or (self.complete and stored != self.total):
                raise WeightsFileError(
                    f"{self.label}: {stored} bytes stored up to chunk {self.next_index - 1}, "
                    f"{self.total} expected for {self.dtype} {list(first.shape)}"
                )
            yield Piece(first.name, first.shape, self.dtype, self.offset, data, self.complete)
            self.offset += data.nbytes


class _WeightsFile:
    """An open weights file: its footer, its rows one row group at a time, its mapped values."""

    def __init__(self, source: WeightsSource) -> None:
        require_little_endian()
        self.where = str(getattr(source, "name", source))
        try:
            self.parquet = pq.ParquetFile(source, page_checksum_verification=True)
        except (OSError, pa.ArrowException) as exc:
            raise WeightsFileError(f"{self.where}: not a readable Parquet file: {exc}") from exc
        metadata = self.parquet.schema_arrow.metadata or {}
        if metadata.get(FORMAT_KEY) != FORMAT_VERSION.encode():
            self.parquet.close()
            raise WeightsFileError(
                f"{self.where}: not a weights file of format {FORMAT_VERSION} (schema key "
                f"{FORMAT_KEY.decode()} is {metadata.get(FORMAT_KEY)!r})"
            )
        missing = [f.name for f in SCHEMA if f.name not in self.parquet.schema_arrow.names]
        if missing:
            self.parquet.close()
            raise WeightsFileError(f"{self.where}: weights file lacks the columns {', '.join(missing)}")
        self.num_row_groups: int = self.parquet.metadata.num_row_groups
        self._data_column = self.parquet.schema_arrow.get_field_index("data")
        # Only a path is mapped: an open file given by the caller is read through, as asked.
        self._raw = open(source, "rb") if isinstance(source, (str, os.PathLike)) else None  # noqa: SIM115

    def __enter__(self) -> _WeightsFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.parquet.close()  # closes only a file it opened itself, never the caller's
        if self._raw is not None:
            self._raw.close()  # mappings made from it stay valid

    def aliases_by_target(self) -> dict[str, list[str]]:
        # Two small columns of every row group; the data column is not read.
        try:
            table = self.parquet.read(columns=["name", "alias_of"])
        except (OSError, pa.ArrowException) as exc:
            raise WeightsFileError(f"{self.where}: cannot read names: {exc}") from exc
        aliases: dict[str, list[str]] = {}
        for name, target in zip(
            table.column("name").to_pylist(), table.column("alias_of").to_pylist(), strict=True
        ):
            if target is not None:
                aliases.setdefault(target, []).append(name)
        return aliases

    def rows(self, index: int, release_as_read: bool = False) -> list[StoredRow]:
        """The row group's rows; with `release_as_read`, a mapped value's pages leave the process
        as its checksum is verified (see `iter_pieces`)."""
        small = self._read(index, _SMALL_COLUMNS)
        columns = {name: small.column(name).to_pylist() for name in _SMALL_COLUMNS}
        mapped = None
        if small.num_rows == 1 and columns["alias_of"][0] is None:
            mapped = self._mapped_value(index, release_as_read)
        if mapped is not None:
            values: list[np.ndarray | None] = [mapped.value]
        else:
            values = _binary_values(self._read(index, ["data"]).column("data"))
        return [
            StoredRow(
                name=name,
                shape=tuple(columns["shape"][i]),
                dtype=columns["dtype"][i],
                chunk_index=columns["chunk_index"][i],
                num_chunks=columns["num_chunks"][i],
                alias_of=columns["alias_of"][i],
                data=values[i],
                mapped=mapped,
            )
            for i, name in enumerate(columns["name"])
        ]

    def find(self, name: str) -> list[StoredRow]:
        metadata = self.parquet.metadata
        name_column = self.parquet.schema_arrow.get_field_index("name")
        rows: list[StoredRow] = []
        for index in range(metadata.num_row_groups):
            stats = metadata.row_group(index).column(name_column).statistics
            # No statistics (another writer): the group may hold the name and must be read.
            if stats is not None and stats.has_min_max and not stats.min <= name <= stats.max:
                continue
            rows.extend(row for row in self.rows(index) if row.name == name)
        if not rows:
            raise WeightsFileError(f"{self.where}: no tensor named {name!r}")
        return rows

    def _read(self, index: int, columns: list[str]) -> pa.Table:
        try:
            # one thread: a row group is one large value and a few small ones, and handing columns to
            # Arrow's pool measured slower (up to 1.5x for lz4, more on a busy machine)
            return self.parquet.read_row_group(index, columns=columns, use_threads=False)
        except (OSError, pa.ArrowException) as exc:  # checksum, decompression or decoding failures
            raise WeightsFileError(f"{self.where}: row group {index} is corrupt: {exc}") from exc

    def _mapped_value(self, index: int, release_as_read: bool) -> _Mapping | None:
        """The row group's value mapped from the file, checksum verified; None where Parquet must
        read it: a compressed column, an open file, a page not laid out as the writer lays it out,
        or a checksum that fails (the reader then reports the corruption)."""
        column = self.parquet.metadata.row_group(index).column(self._data_column)
        if self._raw is None or column.compression != "UNCOMPRESSED" or column.has_dictionary_page:
            return None
        start, size = column.data_page_offset, column.total_compressed_size
        self._raw.seek(start)
        page = value_page(self._raw.read(min(size, PAGE_HEAD_BYTES)), size)
        if page is None:
            return None
        payload = start + page.payload_offset
        mapped_from = payload - payload % mmap.ALLOCATIONGRANULARITY  # mappings start on a page
        try:
            # Copy-on-write: tensors over it are writable (torch wants that) and never write the file.
            mapping = mmap.mmap(
                self._raw.fileno(), start + size - mapped_from, access=mmap.ACCESS_COPY, offset=mapped_from
            )
        except (OSError, ValueError):
            return None  # a file that cannot be mapped (a pipe, a special file): read it
        mapped = _Mapping(mapping, start + page.value_offset - mapped_from, page.value_bytes)
        if page.crc is not None and mapped.checksum(payload - mapped_from, release_as_read) != page.crc:
            return None
        return mapped


#: bytes of a mapped value hashed, or handed to a consumer that releases them, at a time
MAPPED_WINDOW_BYTES = 4 << 20
#: None where the system cannot drop mapped pages (Windows): they then stay until unmapped
_DONTNEED: int | None = getattr(mmap, "MADV_DONTNEED", None)


class _Mapping:
    """A copy-on-write mapping of the file and the value in it, `value_bytes` from `value_offset`.

    Its pages are the file's, in the page cache: dropping them from the process (MADV_DONTNEED) loses
    nothing but what was written into them, and touching them again maps them back."""

    def __init__(self, mapping: mmap.mmap, value_offset: int, value_bytes: int) -> None:
        self.mapping = mapping
        self.value_offset = value_offset
        # The array holds the mapping; the mapping is unmapped when the last array over it goes.
        self.value = np.frombuffer(mapping, dtype=np.uint8, count=value_bytes, offset=value_offset)

    def checksum(self, start: int, release: bool) -> int:
        """CRC-32 of the mapping from `start` to its end, a window at a time; with `release`, each
        window's pages released once hashed, so verifying a value costs no memory, whatever its
        size. A loader keeps them: the tensor is about to be used, and a page dropped is a page
        faulted again (reading an uncompressed bert-base and touching it measured 12-17% slower)."""
        crc = 0
        with memoryview(self.mapping) as view:
            # windows on whole pages (the mapping starts on one), so each drops all of its own
            for window in range(start - start % MAPPED_WINDOW_BYTES, len(self.mapping), MAPPED_WINDOW_BYTES):
                crc = zlib.crc32(view[max(window, start) : window + MAPPED_WINDOW_BYTES], crc)
                if release:
                    self._drop(window, window + MAPPED_WINDOW_BYTES)
        return crc

    def release(self, start: int, stop: int) -> None:
        """Drop the pages wholly inside bytes start..stop of the value from the process."""
        self._drop(self.value_offset + start, self.value_offset + stop)

    def _drop(self, start: int, stop: int) -> None:
        # whole pages only: a page partly outside the range may be in use
        first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
        last = min(stop, len(self.mapping)) // mmap.PAGESIZE * mmap.PAGESIZE
        if first < last and _DONTNEED is not None:
            self.mapping.madvise(_DONTNEED, first, last - first)


def _buffer(size: int) -> np.ndarray:
    # Writable bytes from Arrow's allocator, which keeps the memory of chunks decoded and dropped: a
    # fresh allocation would fault in every page again (measured: joined tensors read 2x slower).
    return np.frombuffer(pa.allocate_buffer(size), np.uint8)


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


def _finish(tensor: torch.Tensor, device: str | torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor.to(device)
