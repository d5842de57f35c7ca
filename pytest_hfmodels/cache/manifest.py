"""The manifest every cache entry keeps of itself (`hfmodels-manifest.json`): the one reader and writer.

The cache writes it last, inside the entry's staging folder, after the builder finished: the
entry's name and kind, when it was built, what the builder recorded (a conversion's exporter,
opset and differences, say) and every file with its size, mtime and sha256. A folder is an entry
of this cache only if it holds a manifest this module wrote, so clean-up never takes a folder it
did not make, and every use of an entry can check its files against what was built.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

MANIFEST_FILE = "hfmodels-manifest.json"
#: what a manifest says of its writer; another tool's JSON of the same name is not ours
WRITER = "pytest-hfmodels"
FORMAT = 1


def file_sha256(path: Path, chunk: int = 2**20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


#: folder under a cache root holding what `remembered_sha256` learnt (loose files: not entries)
HASHES_DIR = "hashes"


def remembered_sha256(path: Path, cache_root: Path, *, full: bool = False) -> str:
    """sha256 of `path`, hashed once per file version: remembered under the cache root with the
    file's size, mtime and inode, and trusted while they are unchanged (as a manifest's sizes and
    mtimes are); `full` hashes again. Rehashing a 90 MB model on every warm lookup cost 7% of a
    cold conversion."""
    info = path.stat()  # follows links: a Hub snapshot's files are links to its blobs
    resolved = str(path.resolve())
    identity = [info.st_size, info.st_mtime_ns, info.st_ino]
    memo = Path(cache_root) / HASHES_DIR / f"{hashlib.sha256(resolved.encode()).hexdigest()[:40]}.json"
    if not full:
        try:
            known = json.loads(memo.read_text(encoding="utf-8"))
            if known["path"] == resolved and known["identity"] == identity:
                return str(known["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # never hashed, or a memo from another version of the file: hash it
    digest = file_sha256(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    _write_json(memo, {"path": resolved, "identity": identity, "sha256": digest})
    return digest


def file_entry(path: Path) -> dict[str, Any]:
    """What a manifest lists for one file: its size, mtime (ns) and sha256."""
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": file_sha256(path)}


def write_manifest(folder: Path, kind: str, name: str, details: Mapping[str, Any]) -> dict[str, Any]:
    """List every regular file under `folder` and write the manifest there; returns it.

    `details` are the builder's own fields; the cache's fields (writer, kind, name, files, built
    time) win over any of the same name.
    """
    files = {
        path.relative_to(folder).as_posix(): file_entry(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink() and path.name != MANIFEST_FILE
    }
    manifest = {
        **details,
        "writer": WRITER,
        "format": FORMAT,
        "kind": kind,
        "name": name,
        "created_at": time.time(),
        "files": files,
    }
    _write_json(folder / MANIFEST_FILE, manifest)
    return manifest


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None where it is absent, a symlink, unreadable or not one of ours."""
    path = folder / MANIFEST_FILE
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("writer") != WRITER or not isinstance(data.get("files"), dict):
        return None
    return data


def file_problems(folder: Path, files: Mapping[str, Any], *, full: bool = True) -> list[str]:
    """Each listed file that is missing, a symlink, or not as recorded.

    `full` hashes every file. Otherwise the size is always checked and a file is hashed only when
    its mtime differs from the recorded one: writing into a file changes its mtime, copying a
    cache to another disk changes it too, and only the hash can tell those apart.
    """
    problems = []
    for name, expected in files.items():
        path = folder / name
        if path.is_symlink() or not path.is_file():
            problems.append(f"{name}: missing")
            continue
        info = path.stat()
        if info.st_size != expected.get("size"):
            problems.append(f"{name}: {info.st_size} bytes, recorded {expected.get('size')}")
        elif (full or info.st_mtime_ns != expected.get("mtime_ns")) and file_sha256(path) != expected.get(
            "sha256"
        ):
            problems.append(f"{name}: sha256 differs from the recorded {str(expected.get('sha256'))[:16]}...")
    return problems


def intact_manifest(folder: Path, *, full: bool = False) -> dict[str, Any] | None:
    """The folder's manifest if every file it lists is as recorded (see `file_problems`); else None.

    Files found intact by their hash after their mtime changed get their new mtime recorded, so the
    next use is cheap again.
    """
    manifest = read_manifest(folder)
    if manifest is None or file_problems(folder, manifest["files"], full=full):
        return None
    moved = {
        name: {**entry, "mtime_ns": (folder / name).stat().st_mtime_ns}
        for name, entry in manifest["files"].items()
        if (folder / name).stat().st_mtime_ns != entry.get("mtime_ns")
    }
    if moved:
        manifest["files"] = {**manifest["files"], **moved}
        with suppress(OSError):  # a read-only shared cache still serves; it only hashes again
            _write_json(folder / MANIFEST_FILE, manifest)
    return manifest


def files_size(manifest: Mapping[str, Any]) -> int:
    """Bytes of every file the manifest lists."""
    return sum(int(entry["size"]) for entry in manifest["files"].values())


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write beside and rename: a reader sees the old manifest or the new one, never half of one."""
    staged = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    staged.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(staged, path)
