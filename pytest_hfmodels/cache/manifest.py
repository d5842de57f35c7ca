"""The record a cache entry keeps of itself (`conversion.json`): the one reader and writer.

A conversion writes its record last, inside the entry's temporary folder, listing every file with
its size and sha256; the cache's `verify`, the ONNX cache's corruption check and the database's
conversion registry all read it through here, so they agree on what an intact entry is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RECORD_FILE = "conversion.json"


def file_sha256(path: Path, chunk: int = 2**20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """What a record lists for one file: its size and sha256."""
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


def write_record(folder: Path, record: Mapping[str, Any]) -> None:
    (folder / RECORD_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")


def read_record(folder: Path) -> dict[str, Any] | None:
    """The folder's record, or None where it is absent, a symlink, unreadable or not a JSON object."""
    path = folder / RECORD_FILE
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def file_problems(folder: Path, files: Mapping[str, Any]) -> list[str]:
    """Each listed file that is missing, a symlink, or not of its recorded size and sha256."""
    problems = []
    for name, expected in files.items():
        path = folder / name
        if path.is_symlink() or not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != expected["size"]:
            problems.append(f"{name}: {path.stat().st_size} bytes, recorded {expected['size']}")
        elif file_sha256(path) != expected["sha256"]:
            problems.append(f"{name}: sha256 differs from the recorded {expected['sha256'][:16]}...")
    return problems


def intact_record(folder: Path) -> dict[str, Any] | None:
    """The folder's record if it lists files and every one has its recorded size and sha256; else None."""
    record = read_record(folder)
    files = (record or {}).get("files")
    if not files or file_problems(folder, files):
        return None
    return record
