"""Looking after the cache root: list its entries, rehash conversions, remove idle entries.

An entry is a folder `<root>/<kind>/<name>` (kind: tiny, onnx, ...). Nothing outside the root is
ever removed or even followed: a symlink is never an entry and never walked into, and inside an
entry being removed it goes as a link, its target untouched. An entry is renamed aside under its
build lock before it is deleted, so a reader never finds half a folder and a build in progress is
never removed.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_hfmodels.cache.manifest import RECORD_FILE, file_problems, read_record
from pytest_hfmodels.errors import OptionError

THRESHOLD_ENV = "CACHE_CLEANUP_THRESHOLD"  #: GB (10**9 bytes) above which clean-up starts
MIN_AGE_ENV = "CACHE_CLEANUP_MIN_AGE_DAYS"  #: days an entry must have been idle to be removed
DEFAULT_THRESHOLD_GB = 30.0
DEFAULT_MIN_AGE_DAYS = 7.0
_DAY_S = 86400.0


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    kind: str  #: the folder under the root: tiny, onnx, ...
    size: int  #: bytes of its regular files (links are not followed)
    last_used: float  #: newest mtime of the folder and its files (conversions touch it when reused)
    partial: bool = False  #: a staging folder a build left behind (killed mid-build)
    record: Mapping[str, Any] | None = field(default=None, compare=False)  #: conversion.json, if any

    def idle_days(self, now: float | None = None) -> float:
        return ((now if now is not None else time.time()) - self.last_used) / _DAY_S


@dataclass(frozen=True)
class CleanPolicy:
    max_size_bytes: int
    min_age_days: float

    @classmethod
    def from_env(cls, max_size_gb: float | None = None, min_age_days: float | None = None) -> CleanPolicy:
        """Explicit values win over the environment, which wins over the defaults (30 GB, 7 days)."""
        gb = max_size_gb if max_size_gb is not None else _env_float(THRESHOLD_ENV, DEFAULT_THRESHOLD_GB)
        days = min_age_days if min_age_days is not None else _env_float(MIN_AGE_ENV, DEFAULT_MIN_AGE_DAYS)
        if gb < 0 or days < 0:
            raise OptionError(f"cache clean: size {gb} GB and age {days} days must not be negative")
        return cls(int(gb * 10**9), days)


@dataclass(frozen=True)
class CleanReport:
    removed: tuple[CacheEntry, ...]
    busy: tuple[CacheEntry, ...]  #: idle enough but locked by a build: left alone
    size_before: int
    size_after: int


@dataclass(frozen=True)
class VerifyResult:
    entry: CacheEntry
    ok: bool | None  #: None: nothing recorded to verify against
    problems: tuple[str, ...] = ()


def list_entries(root: Path) -> list[CacheEntry]:
    """Every entry under `root`, sorted by kind and name; links and loose files are skipped."""
    root = Path(root)
    entries: list[CacheEntry] = []
    for kind in _real_dirs(root):
        for item in _real_dirs(kind):
            partial = item.name.startswith(".") and item.name.endswith(".tmp")
            size, last_used = _measure(item)
            entries.append(CacheEntry(item, kind.name, size, last_used, partial, read_record(item)))
    return entries


def verify_entries(root: Path) -> list[VerifyResult]:
    """Rehash every file each conversion record lists against the recorded size and sha256."""
    results = []
    for entry in list_entries(root):
        if entry.partial:
            continue
        files = (entry.record or {}).get("files")
        if not files:
            if (entry.path / RECORD_FILE).exists():  # a record was written, and is now unreadable
                results.append(VerifyResult(entry, False, (f"{RECORD_FILE}: unreadable or lists no files",)))
            else:
                results.append(VerifyResult(entry, None))
            continue
        problems = file_problems(entry.path, files)
        results.append(VerifyResult(entry, not problems, tuple(problems)))
    return results


def clean(root: Path, policy: CleanPolicy, now: float | None = None, dry_run: bool = False) -> CleanReport:
    """Remove left-over staging folders, then idle entries oldest first while the cache is too big."""
    now = time.time() if now is None else now
    entries = list_entries(root)
    size = size_before = sum(e.size for e in entries)
    removed: list[CacheEntry] = []
    busy: list[CacheEntry] = []
    for entry in entries:
        if not entry.partial or entry.idle_days(now) < policy.min_age_days:
            continue
        if dry_run or remove_entry(root, entry):
            removed.append(entry)
            size -= entry.size
    for entry in sorted((e for e in entries if not e.partial), key=lambda e: e.last_used):
        if size <= policy.max_size_bytes or entry.idle_days(now) < policy.min_age_days:
            break  # oldest first: every later entry is newer still
        if dry_run or remove_entry(root, entry):
            removed.append(entry)
            size -= entry.size
        else:
            busy.append(entry)
    return CleanReport(tuple(removed), tuple(busy), size_before, size)


def clean_if_needed(root: Path) -> CleanReport | None:
    """The automatic clean-up: only when the cache exceeds CACHE_CLEANUP_THRESHOLD GB."""
    policy = CleanPolicy.from_env()
    if not Path(root).is_dir() or sum(e.size for e in list_entries(root)) <= policy.max_size_bytes:
        return None
    return clean(root, policy)


def remove_entry(root: Path, entry: CacheEntry) -> bool:
    """Remove one entry under its build lock; False when a build holds the lock."""
    from filelock import FileLock, Timeout

    path = entry.path
    if not _inside(Path(root), path) or path.is_symlink():
        raise OptionError(f"cache: refusing to remove {path}: not a folder inside the cache root {root}")
    lock = FileLock(str(_lock_path(entry)), timeout=0)
    try:
        with lock:
            if not path.is_dir() or path.is_symlink():
                return True  # removed by someone else meanwhile
            aside = path.with_name(f".{path.name.lstrip('.')}.removing-{os.getpid()}.tmp")
            os.replace(path, aside)
    except Timeout:
        return False
    shutil.rmtree(aside)  # unlinks symlinks inside; never follows them
    return True


def _lock_path(entry: CacheEntry) -> Path:
    """The build lock guarding an entry; a staging folder `.<target>.<random>.tmp` shares its target's."""
    name = entry.path.name
    if entry.partial:
        name = name[1:].rsplit(".", 2)[0]
    return entry.path.with_name(name + ".lock")


def _real_dirs(folder: Path) -> list[Path]:
    try:
        items = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(Path(i.path) for i in items if i.is_dir(follow_symlinks=False))


def _measure(folder: Path) -> tuple[int, float]:
    size, newest = 0, os.lstat(folder).st_mtime
    for current, dirs, files in os.walk(folder, followlinks=False):
        for name in files + dirs:
            info = os.lstat(os.path.join(current, name))
            newest = max(newest, info.st_mtime)
            if stat.S_ISREG(info.st_mode):
                size += info.st_size
    return size, newest


def _inside(root: Path, path: Path) -> bool:
    """`path` is strictly below the real root, judged on its parent so a link named `path` counts too."""
    real_root = root.resolve()
    parent = path.parent.resolve()
    return parent != real_root and parent.is_relative_to(real_root)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise OptionError(f"environment variable {name}={value!r}: not a number") from None
