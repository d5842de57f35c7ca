"""Thrift's compact protocol, which Parquet's page headers and footer are written in (parquet.thrift).

A struct decodes to its fields with their wire types and encodes back to the same bytes, so the
writer can change a few numbers of what Arrow wrote (the sizes of pages it writes itself) and keep
every field it does not know. Maps are refused: parquet.thrift has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT, UUID = range(14)
_INTEGERS = (I16, I32, I64)
_UINT64 = (1 << 64) - 1


@dataclass
class Field:
    """One field's wire type and value: a bool, an int (BYTE and the integers), bytes (BINARY, and
    the raw bytes of DOUBLE and UUID, which nothing here reads), a `Struct` or a `ThriftList`."""

    kind: int
    value: Any


@dataclass
class ThriftList:
    """A LIST or SET's elements: their wire type and values (booleans kept as their bytes)."""

    element: int
    items: list[Any]


#: field id -> field
Struct = dict[int, Field]


def decode_struct(data: bytes | memoryview, position: int = 0) -> tuple[Struct, int]:
    """The struct starting at `position` and the position after it; IndexError when `data` ends
    first, ValueError when it is not compact Thrift."""
    fields: Struct = {}
    field_id = 0
    while True:
        byte = data[position]
        position += 1
        kind = byte & 0x0F
        if kind == STOP:
            return fields, position
        if byte >> 4:
            field_id += byte >> 4
        else:
            field_id, position = _zigzag(data, position)
        if kind in (TRUE, FALSE):  # a boolean field's value is its type
            fields[field_id] = Field(kind, kind == TRUE)
            continue
        value, position = _decode_value(data, position, kind)
        fields[field_id] = Field(kind, value)


def encode_struct(fields: Struct) -> bytes:
    out = bytearray()
    _encode_struct(out, fields)
    return bytes(out)


def integer(fields: Struct, field_id: int) -> int | None:
    """An integer field's value; None when absent or not an integer."""
    field = fields.get(field_id)
    return field.value if field is not None and field.kind in _INTEGERS else None


def child(fields: Struct, field_id: int) -> Struct | None:
    """A struct field's fields; None when absent or not a struct."""
    field = fields.get(field_id)
    return field.value if field is not None and field.kind == STRUCT else None


def children(fields: Struct, field_id: int) -> list[Struct]:
    """A list-of-structs field's elements; empty when absent or not a list of structs."""
    field = fields.get(field_id)
    if field is None or field.kind != LIST or field.value.element != STRUCT:
        return []
    items: list[Struct] = field.value.items
    return items


def add(fields: Struct, field_id: int, amount: int) -> None:
    """Add `amount` to an integer field; a field that is absent stays absent."""
    field = fields.get(field_id)
    if field is not None:
        if field.kind not in _INTEGERS:
            raise ValueError(f"field {field_id} is not an integer")
        field.value += amount


def varint(data: bytes | memoryview, position: int) -> tuple[int, int]:
    """An unsigned LEB128 varint (Thrift's, and Parquet's RLE run headers) and the position after."""
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _zigzag(data: bytes | memoryview, position: int) -> tuple[int, int]:
    value, position = varint(data, position)
    return (value >> 1) ^ -(value & 1), position


def _decode_value(data: bytes | memoryview, position: int, kind: int) -> tuple[Any, int]:
    if kind == BYTE:
        return data[position], position + 1
    if kind in _INTEGERS:
        return _zigzag(data, position)
    if kind in (DOUBLE, UUID):
        end = position + (8 if kind == DOUBLE else 16)
        if end > len(data):
            raise IndexError("data ends inside a value")
        return bytes(data[position:end]), end
    if kind == BINARY:
        size, position = varint(data, position)
        if position + size > len(data):
            raise IndexError("data ends inside a value")
        return bytes(data[position : position + size]), position + size
    if kind == STRUCT:
        return decode_struct(data, position)
    if kind in (LIST, SET):
        byte = data[position]
        position += 1
        size, element = byte >> 4, byte & 0x0F
        if size == 15:
            size, position = varint(data, position)
        # a boolean element is a byte, unlike a boolean field, whose value is its type
        element_kind = BYTE if element in (TRUE, FALSE) else element
        items = []
        for _ in range(size):
            item, position = _decode_value(data, position, element_kind)
            items.append(item)
        return ThriftList(element, items), position
    raise ValueError(f"Thrift type {kind} is not one Parquet's metadata uses")


def _encode_struct(out: bytearray, fields: Struct) -> None:
    last = 0
    for field_id in sorted(fields):
        field = fields[field_id]
        kind = (TRUE if field.value else FALSE) if field.kind in (TRUE, FALSE) else field.kind
        if 0 < field_id - last <= 15:
            out.append((field_id - last) << 4 | kind)
        else:
            out.append(kind)
            _encode_varint(out, _zigzag_of(field_id))
        last = field_id
        if field.kind not in (TRUE, FALSE):
            _encode_value(out, field.kind, field.value)
    out.append(STOP)


def _encode_value(out: bytearray, kind: int, value: Any) -> None:
    if kind == BYTE:
        out.append(value & 0xFF)
    elif kind in _INTEGERS:
        _encode_varint(out, _zigzag_of(value))
    elif kind in (DOUBLE, UUID):
        out += value
    elif kind == BINARY:
        _encode_varint(out, len(value))
        out += value
    elif kind == STRUCT:
        _encode_struct(out, value)
    elif kind in (LIST, SET):
        size = len(value.items)
        out.append((size << 4 if size < 15 else 0xF0) | value.element)
        if size >= 15:
            _encode_varint(out, size)
        element_kind = BYTE if value.element in (TRUE, FALSE) else value.element
        for item in value.items:
            _encode_value(out, element_kind, item)
    else:
        raise ValueError(f"Thrift type {kind} is not one Parquet's metadata uses")


def _zigzag_of(value: int) -> int:
    return ((value << 1) ^ (value >> 63)) & _UINT64


def _encode_varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
