"""The on-disk cache: content-addressed entries `<root>/<kind>/<name>`, built once per machine under a
file lock, each checked against its manifest whenever it is used.

An entry is built in a staging folder beside it and renamed into place with its manifest, so a
reader (another xdist worker, another pytest process) sees either nothing or the whole entry. The
root carries a CACHEDIR.TAG (https://bford.info/cachedir/) naming this tool: backup tools skip the
folder, and clean-up refuses a root without it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from pytest_hfmodels.cache.manifest import MANIFEST_FILE, intact_manifest, write_manifest
from pytest_hfmodels.errors import CacheError

#: environment variable naming the cache root (the --hf-cache-dir option wins over it)
CACHE_ENV = "HFMODELS_CACHE"
CACHE_TAG = "CACHEDIR.TAG"
_TAG_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
_TAG_TEXT = (
    f"{_TAG_SIGNATURE}\n"
    "# This file is a cache directory tag created by pytest-hfmodels.\n"
    "# `hfmodels cache clean` removes only the entries it built here (those holding\n"
    f"# {MANIFEST_FILE}); other folders are listed as foreign and left alone.\n"
)


@dataclass(frozen=True)
class CachedEntry:
    """An intact entry: its folder, its manifest, and whether this call built it."""

    path: Path
    manifest: Mapping[str, Any]
    built: bool


def default_cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hfmodels"


def content_key(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (spec, versions, ...)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def is_cache_root(root: Path) -> bool:
    """`root` holds the CACHEDIR.TAG this tool writes (a real file, not a link)."""
    tag = Path(root) / CACHE_TAG
    if tag.is_symlink() or not tag.is_file():
        return False
    try:
        text = tag.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return text.startswith(_TAG_SIGNATURE) and "pytest-hfmodels" in text


def mark_cache_root(root: Path) -> None:
    """Create `root` if needed and tag it as this tool's cache (once; concurrent callers agree)."""
    root.mkdir(parents=True, exist_ok=True)
    tag = root / CACHE_TAG
    if tag.exists() or tag.is_symlink():
        return  # another tool's tag stays: is_cache_root then says no, and clean refuses the root
    staged = root / f".{CACHE_TAG}.{os.getpid()}.tmp"
    staged.write_text(_TAG_TEXT, encoding="utf-8")
    os.replace(staged, tag)


def lock_path(entry: Path) -> Path:
    """The build lock guarding the entry folder `entry`."""
    return entry.with_name(entry.name + ".lock")


def staging_folders(entry: Path) -> list[Path]:
    """Staging folders `.<name>.<random>.tmp` of builds (live or dead) of `entry` (see `staging_target`)."""
    pattern = os.path.join(glob.escape(str(entry.parent)), f".{glob.escape(entry.name)}.*.tmp")
    return [Path(p) for p in glob.glob(pattern) if os.path.isdir(p) and not os.path.islink(p)]


def staging_target(folder: Path) -> Path | None:
    """The entry a staging folder `.<name>.<random>.tmp` is (or was) building; None for other names."""
    name = folder.name
    if not (name.startswith(".") and name.endswith(".tmp")) or name.count(".") < 3:
        return None
    return folder.with_name(name[1:].rsplit(".", 2)[0])


def build_once(
    root: Path,
    kind: str,
    name: str,
    build: Callable[[Path], Mapping[str, Any] | None],
    *,
    lock_timeout: float = 600.0,
    full_check: bool = False,
) -> CachedEntry:
    """The intact entry `<root>/<kind>/<name>`, built now with `build(staging_dir)` if needed.

    `build` writes the entry's files and returns fields for its manifest. An entry that exists is
    checked against its manifest (sizes, and hashes of files whose mtime moved; every hash with
    `full_check`); a damaged one is set aside and rebuilt under the lock. Concurrent callers
    (threads, processes) for the same entry run `build` exactly once.
    """
    target = Path(root) / kind / name
    if target.is_dir() and (manifest := intact_manifest(target, full=full_check)) is not None:
        _touch(target)
        return CachedEntry(target, manifest, built=False)
    mark_cache_root(Path(root))
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path(target)), timeout=lock_timeout):
        if target.is_dir():
            manifest = intact_manifest(target, full=full_check)
            if manifest is not None:  # built (or repaired) by another process while we waited
                return CachedEntry(target, manifest, built=False)
            _set_aside_damaged(target)
        for dead in staging_folders(target):  # we hold the lock: no build of this entry is alive
            shutil.rmtree(dead, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            details = build(staging) or {}
            manifest = write_manifest(staging, kind, name, details)
            os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return CachedEntry(target, manifest, built=True)


def _set_aside_damaged(target: Path) -> None:
    """Move a damaged entry out of the way (the caller holds its lock) and delete it.

    Only a folder holding a manifest file is ours to delete (its content may be what is damaged);
    anything else at an entry's path is refused, naming it, rather than removed.
    """
    manifest_file = target / MANIFEST_FILE
    if target.is_symlink() or manifest_file.is_symlink() or not manifest_file.is_file():
        raise CacheError(
            f"{target}: a folder at a cache entry's path without this tool's {MANIFEST_FILE}; "
            "not ours to replace: move it away"
        )
    aside = target.with_name(f".{target.name}.damaged-{os.getpid()}.tmp")
    os.replace(target, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _touch(path: Path) -> None:
    """Mark a cache entry as used now: clean-up removes entries by idle time (mtime)."""
    with suppress(OSError):
        os.utime(path)
        os.utime(path / MANIFEST_FILE)
