"""Looking after the cache root: list its entries, rehash them, remove idle ones.

An entry is a folder `<root>/<kind>/<name>` (kind: tiny, onnx, ...) holding the manifest the cache
wrote when it built it; a staging folder `.<name>.<random>.tmp` beside its build lock is a build in
progress or a dead one. Anything else under the root is foreign: listed, never removed. A root
without this tool's CACHEDIR.TAG is refused by `clean`. Nothing outside the root is ever removed or
even followed: a symlink is never an entry and never walked into, and inside an entry being
removed it goes as a link, its target untouched. An entry is renamed aside under its build lock
before it is deleted, so a reader never finds half a folder and a build in progress is never
removed.
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

from pytest_hfmodels.cache.manifest import MANIFEST_FILE, file_problems, read_manifest
from pytest_hfmodels.cache.store import CACHE_TAG, is_cache_root, lock_path, staging_folders, staging_target
from pytest_hfmodels.errors import CacheError, OptionError

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
    partial: bool = False  #: a staging folder of a build, live or killed mid-build
    manifest: Mapping[str, Any] | None = field(default=None, compare=False)  #: None: unreadable
    foreign: bool = False  #: not made by this cache: never removed

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
    locks_removed: tuple[Path, ...] = ()  #: build locks left by dead builds of entries that are gone


@dataclass(frozen=True)
class VerifyResult:
    entry: CacheEntry
    ok: bool | None  #: None: nothing recorded to verify against
    problems: tuple[str, ...] = ()


def list_entries(root: Path) -> list[CacheEntry]:
    """Everything under `root`'s kind folders, sorted by kind and name: this cache's entries, the
    staging folders of its builds and foreign folders; links and loose files are skipped."""
    root = Path(root)
    entries: list[CacheEntry] = []
    for kind in _real_dirs(root):
        for item in _real_dirs(kind):
            size, last_used = _measure(item)
            partial = _is_staging(item)
            ours = partial or (item / MANIFEST_FILE).is_file()
            manifest = None if partial else read_manifest(item)
            entries.append(CacheEntry(item, kind.name, size, last_used, partial, manifest, not ours))
    return entries


def verify_entries(root: Path) -> list[VerifyResult]:
    """Rehash every file each entry's manifest lists against the recorded size and sha256."""
    results = []
    for entry in list_entries(root):
        if entry.partial or entry.foreign:
            continue
        if entry.manifest is None:
            results.append(VerifyResult(entry, False, (f"{MANIFEST_FILE}: unreadable",)))
            continue
        problems = file_problems(entry.path, entry.manifest["files"], full=True)
        results.append(VerifyResult(entry, not problems, tuple(problems)))
    return results


def clean(root: Path, policy: CleanPolicy, now: float | None = None, dry_run: bool = False) -> CleanReport:
    """Remove dead builds' staging folders and locks, then idle entries oldest first while the cache
    is too big. Foreign folders are never touched; a root this tool did not tag is refused."""
    root = Path(root)
    if not root.exists():
        return CleanReport((), (), 0, 0)
    if not root.is_dir() or not is_cache_root(root):
        raise CacheError(
            f"{root}: not a pytest-hfmodels cache (no {CACHE_TAG} written by it); refusing to clean it"
        )
    now = time.time() if now is None else now
    entries = [e for e in list_entries(root) if not e.foreign]
    size = size_before = sum(e.size for e in entries)
    removed: list[CacheEntry] = []
    busy: list[CacheEntry] = []
    for entry in entries:
        # A staging folder whose lock is free belongs to a build that died: nothing will finish it.
        if entry.partial and (dry_run or remove_entry(root, entry)):
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
    locks = [] if dry_run else _remove_orphan_locks(root)
    return CleanReport(tuple(removed), tuple(busy), size_before, size, tuple(locks))


def clean_if_needed(root: Path, policy: CleanPolicy | None = None) -> CleanReport | None:
    """The automatic clean-up: only of a tagged cache, only when it exceeds the policy's size
    (default: CACHE_CLEANUP_THRESHOLD GB, entries idle CACHE_CLEANUP_MIN_AGE_DAYS)."""
    policy = policy or CleanPolicy.from_env()
    if not Path(root).is_dir() or not is_cache_root(Path(root)):
        return None
    if sum(e.size for e in list_entries(root) if not e.foreign) <= policy.max_size_bytes:
        return None
    return clean(root, policy)


def remove_entry(root: Path, entry: CacheEntry) -> bool:
    """Remove one entry under its build lock; False when a build holds the lock."""
    from filelock import FileLock, Timeout

    path = entry.path
    if entry.foreign or not _inside(Path(root), path) or path.is_symlink():
        raise OptionError(f"cache: refusing to remove {path}: not a folder inside the cache root {root}")
    lock = FileLock(str(_lock_of(entry)), timeout=0)
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


def _lock_of(entry: CacheEntry) -> Path:
    """The build lock guarding an entry; a staging folder `.<target>.<random>.tmp` shares its target's."""
    return lock_path((staging_target(entry.path) if entry.partial else None) or entry.path)


def _is_staging(folder: Path) -> bool:
    """A staging folder beside its entry's build lock: a folder a build of that entry made."""
    target = staging_target(folder)
    return target is not None and lock_path(target).is_file()


def _remove_orphan_locks(root: Path) -> list[Path]:
    """Unlink build locks that guard nothing any more (no entry, no staging folder), each while
    holding it: filelock re-checks after acquiring that its file was not unlinked meanwhile."""
    from filelock import FileLock, Timeout

    removed = []
    for kind in _real_dirs(root):
        for lock in sorted(kind.glob("*.lock")):
            entry = lock.with_name(lock.name[: -len(".lock")])
            if lock.is_symlink() or not lock.is_file() or entry.exists() or staging_folders(entry):
                continue
            try:
                with FileLock(str(lock), timeout=0):
                    if not entry.exists() and not staging_folders(entry):
                        lock.unlink()
                        removed.append(lock)
            except Timeout:
                continue
    return removed


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
