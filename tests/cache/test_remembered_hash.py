"""A model file is hashed once per version: the cache remembers its hash with its size, mtime and
inode, trusts it while they hold, and hashes again when asked (--hf-verify-cache) or when they move."""

from __future__ import annotations

import os
from pathlib import Path

from pytest_hfmodels.cache.admin import list_entries
from pytest_hfmodels.cache.manifest import HASHES_DIR, file_sha256, remembered_sha256


def test_a_hash_is_remembered_while_the_file_is_unchanged(tmp_path: Path) -> None:
    root, weights = tmp_path / "cache", tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 4096)
    first = remembered_sha256(weights, root)
    assert first == file_sha256(weights) and len(list((root / HASHES_DIR).glob("*.json"))) == 1

    # The same size and mtime after an in-place rewrite: trusted as a manifest's sizes and mtimes
    # are, until a full check hashes again.
    info = weights.stat()
    with weights.open("r+b") as handle:
        handle.write(b"b")
    os.utime(weights, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert remembered_sha256(weights, root) == first
    rehashed = remembered_sha256(weights, root, full=True)
    assert rehashed == file_sha256(weights) != first
    assert remembered_sha256(weights, root) == rehashed  # the full check's hash is remembered

    weights.write_bytes(b"c" * 5000)  # a new version: its size and mtime moved
    assert remembered_sha256(weights, root) == file_sha256(weights)


def test_a_damaged_memo_is_hashed_again_and_never_listed_as_an_entry(tmp_path: Path) -> None:
    root, weights = tmp_path / "cache", tmp_path / "model.safetensors"
    weights.write_bytes(b"x" * 100)
    remembered_sha256(weights, root)
    (memo,) = (root / HASHES_DIR).glob("*.json")
    memo.write_text("{not json")
    assert remembered_sha256(weights, root) == file_sha256(weights)
    assert list_entries(root) == []  # loose files under the root are not cache entries
