"""Uncompressed weights files: the value pages the writer writes itself, the footer it corrects,
and mapped chunks read back a window at a time."""

from __future__ import annotations

import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pytest_hfmodels.convert.parquet import load, thrift
from pytest_hfmodels.convert.parquet.format import SCHEMA
from pytest_hfmodels.convert.parquet.load import Piece, iter_pieces, load_parquet_weights
from pytest_hfmodels.convert.parquet.write import write_weights, writer_options


def _state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    tensors = {
        "big": torch.randn(300, 100),
        "ids": torch.arange(7),
        "half": torch.randn(77).half(),
        "brain": torch.randn(33).bfloat16(),
        "scalar": torch.tensor(3.0),
        "empty": torch.zeros(0, 4),
    }
    tensors["tied"] = tensors["big"]
    return tensors


def _write(path: Path, max_chunk_bytes: int, use_float16: bool) -> Path:
    write_weights(
        _state_dict(), path, compression="none", compression_level=3, use_float16=use_float16,
        max_chunk_bytes=max_chunk_bytes, show_progress=False,
    )  # fmt: skip
    return path


@pytest.mark.parametrize("max_chunk_bytes", [1 << 30, 1000], ids=["whole", "chunked"])
@pytest.mark.parametrize("use_float16", [False, True], ids=["kept", "float16"])
def test_the_files_bytes_are_the_ones_arrow_writes(
    tmp_path: Path, max_chunk_bytes: int, use_float16: bool
) -> None:
    ours = _write(tmp_path / "ours.parquet", max_chunk_bytes, use_float16)
    # Arrow writing the same row groups, padded the same way, writes the same bytes: the pages the
    # writer writes itself and the footer it corrects are Arrow's, to the byte.
    rows = pq.ParquetFile(ours, page_checksum_verification=True).read()
    metadata = pq.ParquetFile(ours).metadata
    arrows = tmp_path / "arrow.parquet"
    with (
        pa.OSFile(str(arrows), "wb") as sink,
        pq.ParquetWriter(sink, SCHEMA, **writer_options("none", 3)) as writer,
    ):
        first = 0
        for index in range(metadata.num_row_groups):
            group = metadata.row_group(index)
            sink.write(bytes(group.column(0).data_page_offset - sink.tell()))
            writer.write_table(rows.slice(first, group.num_rows), row_group_size=group.num_rows)
            first += group.num_rows
    assert arrows.read_bytes() == ours.read_bytes()
    loaded = load_parquet_weights(ours)
    for name, tensor in _state_dict().items():
        expected = tensor.half() if use_float16 and tensor.dtype == torch.float32 else tensor
        assert loaded[name].dtype == expected.dtype and torch.equal(loaded[name], expected), name


def test_thrift_decodes_and_encodes_parquet_metadata_to_the_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "types.parquet"
    table = pa.table(
        {
            "f": pa.array([1.5, None, -2.0]), "b": pa.array([True, False, None]),
            "s": pa.array(["a", "bc", None]), "l": pa.array([[1, 2], [], None], pa.list_(pa.int32())),
        }
    )  # fmt: skip
    pq.write_table(table, path, write_page_index=True, write_page_checksum=True)
    data = path.read_bytes()
    (size,) = struct.unpack_from("<I", data, len(data) - 8)
    footer = data[len(data) - 8 - size : -8]
    metadata, end = thrift.decode_struct(footer)
    assert end == size and thrift.encode_struct(metadata) == footer
    headers = 0
    for group in thrift.children(metadata, 4):
        for column in thrift.children(group, 1):
            start = thrift.integer(thrift.child(column, 3) or {}, 9)  # data_page_offset
            assert start is not None
            header, after = thrift.decode_struct(data, start)
            assert thrift.encode_struct(header) == data[start:after]
            headers += 1
    assert headers == 4


def test_mapped_chunks_come_in_windows_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "w.parquet", 1 << 30, use_float16=False)
    monkeypatch.setattr(load, "MAPPED_WINDOW_BYTES", 10_000)  # 2500 float32 elements
    big = _state_dict()["big"]
    whole = [p for p in iter_pieces(path) if isinstance(p, Piece) and p.name == "big"]
    assert len(whole) == 1 and whole[0].data.nbytes == big.nbytes
    read = bytearray()
    pieces = [p for p in iter_pieces(path, release_as_read=True) if isinstance(p, Piece) and p.name == "big"]
    for piece in pieces:  # released already; the file's pages map back when touched
        assert piece.offset == len(read)
        read += piece.data.tobytes()
    assert [p.data.nbytes for p in pieces] == [10_000] * 12
    assert [p.last for p in pieces] == [False] * 11 + [True]
    assert bytes(read) == big.numpy().tobytes()
    empty = [p for p in iter_pieces(path, release_as_read=True) if isinstance(p, Piece) and p.name == "empty"]
    assert [(p.data.nbytes, p.last) for p in empty] == [(0, True)]
