"""The on-disk cache: content-addressed folders, built once per machine under a file lock.

A folder is built in a temporary sibling and renamed into place, so a reader (another xdist
worker, another pytest process) sees either nothing or the whole folder, never half of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from filelock import FileLock

#: environment variable naming the cache root (the --hf-cache-dir option wins over it)
CACHE_ENV = "HFMODELS_CACHE"


def default_cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hfmodels"


def content_key(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (spec, versions, ...)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_once(target: Path, build: Callable[[Path], None], lock_timeout: float = 600.0) -> Path:
    """Return `target`, building it with `build(tmp_dir)` first if it does not exist yet.

    Concurrent callers (threads, processes) for the same target run `build` exactly once; the
    others wait on the lock and then find the finished folder.
    """
    if target.is_dir():
        _touch(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=lock_timeout):
        if target.is_dir():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            build(tmp)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _touch(path: Path) -> None:
    """Mark a cache entry as used now: clean-up removes entries by idle time (mtime)."""
    with suppress(OSError):
        os.utime(path)
