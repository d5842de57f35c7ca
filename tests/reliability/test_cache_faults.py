"""The cache under faults: a user's folder as cache root, flipped and truncated files, a killed build.

Everything here is real: tiny models built by the real builder, the `hfmodels` command and pytest
run as processes, `kill -9` of a process in the middle of a build.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_hfmodels.cache.admin import CleanPolicy, clean, list_entries, verify_entries
from pytest_hfmodels.cache.manifest import MANIFEST_FILE, file_sha256, read_manifest
from pytest_hfmodels.cache.store import CACHE_TAG, build_once, staging_folders
from pytest_hfmodels.errors import CacheError
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.registry.model import ModelEntry
from pytest_hfmodels.sources.tiny import built_model_dir
from tests.helpers import BERT_ONE_CASE, pytest_argv

pytestmark = pytest.mark.slow  # builds real tiny models

WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def bert() -> ModelEntry:
    return next(e for e in load_registries([]).entries if e.key == "bert-tiny")


def users_folder(root: Path) -> dict[Path, bytes]:
    """A folder of someone's own files, some in folders named like cache kinds."""
    files = {
        root / "photos" / "2024" / "beach.jpg": b"\xff\xd8 not really a jpeg",
        root / "onnx" / "mine" / "notes.txt": b"my own onnx experiments",
        root / "tiny" / "drafts" / "draft.md": b"# draft",
        root / "tiny" / ".plan.x1y2.tmp" / "todo.txt": b"looks like a staging folder, is not one",
    }
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


def intact(files: dict[Path, bytes]) -> bool:
    return all(path.read_bytes() == content for path, content in files.items())


def hfmodels(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_hfmodels.cli", *argv], capture_output=True, text=True
    )


def test_clean_refuses_a_folder_that_is_not_a_cache(tmp_path: Path) -> None:
    files = users_folder(tmp_path / "mine")
    done = hfmodels(
        "cache", "clean", "--cache-dir", str(tmp_path / "mine"), "--max-size-gb", "0", "--min-age-days", "0"
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert f"{tmp_path / 'mine'}: not a pytest-hfmodels cache" in line
    assert intact(files)


def test_a_users_folder_as_cache_root_keeps_every_file_of_the_user(tmp_path: Path, bert: ModelEntry) -> None:
    root = tmp_path / "mine"
    files = users_folder(root)
    built = built_model_dir(bert, root)  # the cache moves in beside the user's files, and tags the root
    assert (root / CACHE_TAG).is_file() and read_manifest(built) is not None
    entries = list_entries(root)
    assert {e.path for e in entries if not e.foreign} == {built}
    assert {e.path.name for e in entries if e.foreign} == {"2024", "mine", "drafts", ".plan.x1y2.tmp"}

    listing = hfmodels("cache", "ls", "--cache-dir", str(root))
    assert "1 entries" in listing.stdout and "4 foreign folders, left alone" in listing.stdout
    report = clean(root, CleanPolicy(0, 0))
    assert [e.path for e in report.removed] == [built] and not built.exists()
    assert intact(files)


def test_the_session_end_clean_up_leaves_a_users_files_alone(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    files = users_folder(root)
    env = {**os.environ, "CACHE_CLEANUP_THRESHOLD": "0", "CACHE_CLEANUP_MIN_AGE_DAYS": "0"}
    done = subprocess.run(
        pytest_argv(*BERT_ONE_CASE, "--hf-no-db", f"--hf-cache-dir={root}"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert intact(files)
    assert [e for e in list_entries(root) if not e.foreign] == []  # its own entry went: over the limit


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_tiny_weights_are_found_on_use_and_rebuilt(
    tmp_path: Path, bert: ModelEntry, damage: str
) -> None:
    folder = built_model_dir(bert, tmp_path)
    weights = folder / WEIGHTS
    original = weights.read_bytes()
    data = bytearray(original)
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 2 :]
    weights.write_bytes(bytes(data))
    problems = next(r for r in verify_entries(tmp_path) if r.entry.path == folder).problems
    assert problems and problems[0].startswith(f"{WEIGHTS}: ")

    again = built_model_dir(bert, tmp_path)
    assert again == folder and weights.read_bytes() == original  # rebuilt, byte for byte
    assert all(r.ok for r in verify_entries(tmp_path))


def test_a_flip_that_kept_size_and_mtime_is_found_by_the_full_check(tmp_path: Path, bert: ModelEntry) -> None:
    folder = built_model_dir(bert, tmp_path)
    weights = folder / WEIGHTS
    original, stat = weights.read_bytes(), weights.stat()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as bit rot would leave it
    built_model_dir(bert, tmp_path)  # the cheap check trusts size and mtime
    assert weights.read_bytes() != original
    built_model_dir(bert, tmp_path, full_check=True)  # --hf-verify-cache rehashes
    assert weights.read_bytes() == original


def test_verify_cache_option_rebuilds_a_damaged_model_before_the_run(
    tmp_path: Path, bert: ModelEntry
) -> None:
    root = tmp_path / "cache"
    folder = built_model_dir(bert, root)
    weights = folder / WEIGHTS
    original, stat = weights.read_bytes(), weights.stat()
    weights.write_bytes(original[:-8] + b"\x00" * 8)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    done = subprocess.run(
        pytest_argv(*BERT_ONE_CASE, "--hf-no-db", "--hf-verify-cache", f"--hf-cache-dir={root}"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert weights.read_bytes() == original


BUILD_THEN_HANG = """
import sys, time
from pathlib import Path
from pytest_hfmodels.cache.store import build_once

def build(staging):
    (staging / "half.bin").write_bytes(b"x" * 1000)
    Path(sys.argv[2]).touch()
    time.sleep(600)

build_once(Path(sys.argv[1]), "tiny", "victim-0123456789abcdef", build)
"""


def test_a_build_killed_midway_leaves_nothing_the_next_build_keeps(tmp_path: Path) -> None:
    root, started = tmp_path / "cache", tmp_path / "started"
    builder = subprocess.Popen([sys.executable, "-c", BUILD_THEN_HANG, str(root), str(started)])
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline and builder.poll() is None:
        time.sleep(0.05)
    os.kill(builder.pid, signal.SIGKILL)
    builder.wait()
    target = root / "tiny" / "victim-0123456789abcdef"
    (dead,) = staging_folders(target)
    assert not target.exists()  # nothing half-built is ever at the entry's path

    def build(staging: Path) -> dict[str, str]:
        (staging / "whole.bin").write_bytes(b"y" * 1000)
        return {"note": "rebuilt"}

    entry = build_once(root, "tiny", target.name, build, lock_timeout=5)
    assert entry.built and not dead.exists() and staging_folders(target) == []
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST_FILE, "whole.bin"]
    assert entry.manifest["files"]["whole.bin"]["sha256"] == file_sha256(target / "whole.bin")


def test_a_foreign_folder_at_an_entrys_path_is_refused_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "tiny" / "bert-tiny-0123456789abcdef"
    target.mkdir(parents=True)
    (target / "precious.txt").write_text("mine")
    with pytest.raises(CacheError, match=r"without this tool's hfmodels-manifest\.json; not ours to replace"):
        build_once(tmp_path, "tiny", target.name, lambda staging: None)
    assert (target / "precious.txt").read_text() == "mine"
