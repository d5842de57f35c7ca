"""`hfmodels cache ls | verify | clean` and cache.admin on a cache of real tiny models and conversions."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import pytest
from filelock import FileLock

from pytest_hfmodels.cache import admin as cache_admin
from pytest_hfmodels.cache.admin import CleanPolicy, clean, list_entries, remove_entry, verify_entries
from pytest_hfmodels.cache.manifest import MANIFEST_FILE
from pytest_hfmodels.cli import cache_cmd
from pytest_hfmodels.convert.onnx.cached import export_onnx
from pytest_hfmodels.errors import OptionError
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.sources.tiny import built_model_dir

DAY = 86400.0


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache root with one tiny model and two conversions of it, built once for the module."""
    root = tmp_path_factory.mktemp("template") / "cache"
    entry = next(e for e in load_registries([]).entries if e.key == "bert-tiny")
    folder = built_model_dir(entry, root)
    export_onnx(folder, root, exporter="legacy")
    export_onnx(folder, root, exporter="legacy", opset=17)
    return root


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "cache"
    shutil.copytree(template, copy)
    return copy


def age(path: Path, days: float) -> None:
    """Make an entry look last used `days` ago (links are not followed)."""
    when = time.time() - days * DAY
    for current, dirs, files in os.walk(path, followlinks=False):
        for name in files + dirs:
            os.utime(os.path.join(current, name), (when, when), follow_symlinks=False)
    os.utime(path, (when, when), follow_symlinks=False)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cache_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["cache", *argv])
    return int(args.func(args))


def test_ls_lists_entries_and_conversions(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries = list_entries(root)
    assert sorted(e.kind for e in entries) == ["onnx", "onnx", "tiny"]
    onnx = [e for e in entries if e.kind == "onnx"]
    assert all(e.manifest and e.manifest["exporter"] == "legacy" for e in onnx)
    assert all(e.size > 0 and e.idle_days() < 1 for e in entries)
    assert cli("ls", "--cache-dir", str(root)) == 0
    out = capsys.readouterr().out
    assert "3 entries" in out and "(legacy, opset 17)" in out and "tiny " in out


def test_verify_detects_a_corrupted_conversion(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert [r.ok for r in verify_entries(root)] == [True, True, True]  # tiny models have manifests too
    entry = next(e for e in list_entries(root) if e.manifest and e.manifest.get("opset") == 18)
    model = entry.path / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    model.write_bytes(bytes(data))
    results = {r.entry.path.name: r for r in verify_entries(root)}
    assert results[entry.path.name].ok is False
    assert "model.onnx: sha256 differs" in results[entry.path.name].problems[0]
    assert cli("verify", "--cache-dir", str(root)) == 1
    assert f"onnx/{entry.path.name}: CORRUPT" in capsys.readouterr().out

    other = next(e for e in list_entries(root) if e.manifest and e.manifest.get("opset") == 17)
    (other.path / MANIFEST_FILE).write_text("{ truncated")
    assert next(r for r in verify_entries(root) if r.entry.path == other.path).problems == (
        f"{MANIFEST_FILE}: unreadable",
    )
    model.write_bytes(bytes(data[:100]))
    assert (
        "100 bytes, recorded"
        in next(r for r in verify_entries(root) if r.entry.path == entry.path).problems[0]
    )
    # The converter never serves it: it converts again, and the cache verifies clean.
    again = export_onnx(entry.manifest["model_dir"], root, exporter="legacy")  # type: ignore[index]
    assert again.source == "pytorch_conversion" and again.path == model
    export_onnx(entry.manifest["model_dir"], root, exporter="legacy", opset=17)  # type: ignore[index]
    assert [r.ok for r in verify_entries(root)] == [True, True, True]  # the tiny model's files too


def test_clean_removes_idle_entries_oldest_first_until_under_the_limit(root: Path) -> None:
    entries = list_entries(root)
    tiny = next(e for e in entries if e.kind == "tiny")
    onnx17, onnx18 = (next(e for e in entries if (e.manifest or {}).get("opset") == n) for n in (17, 18))
    age(onnx17.path, 12)
    age(tiny.path, 9)
    total = sum(e.size for e in list_entries(root))

    report = clean(root, CleanPolicy(total - onnx17.size, 7))
    assert [e.path.name for e in report.removed] == [onnx17.path.name]
    assert report.size_after == total - onnx17.size and not onnx17.path.exists()

    report = clean(root, CleanPolicy(0, 7))  # over the limit, but the rest is too recent to go
    assert [e.path.name for e in report.removed] == [tiny.path.name]
    assert onnx18.path.is_dir() and [e.path for e in list_entries(root)] == [onnx18.path]


def test_clean_never_deletes_outside_the_root(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (outside / "folder").mkdir()
    (outside / "folder" / "inner.txt").write_text("me too")
    link_entry = root / "onnx" / "link-entry"
    link_entry.symlink_to(outside, target_is_directory=True)
    link_kind = root / "elsewhere"
    link_kind.symlink_to(outside, target_is_directory=True)
    victim = next(e for e in list_entries(root) if e.kind == "tiny")
    (victim.path / "link-to-file").symlink_to(outside / "precious.txt")
    (victim.path / "link-to-folder").symlink_to(outside / "folder", target_is_directory=True)
    for entry in list_entries(root):
        age(entry.path, 30)
    age(outside, 30)

    assert all(not e.path.is_symlink() for e in list_entries(root))
    report = clean(root, CleanPolicy(0, 0))
    assert {e.path.name for e in report.removed} >= {victim.path.name} and not victim.path.exists()
    assert link_entry.is_symlink() and link_kind.is_symlink()
    assert (outside / "precious.txt").read_text() == "keep me"
    assert (outside / "folder" / "inner.txt").read_text() == "me too"
    with pytest.raises(OptionError, match="refusing to remove"):
        remove_entry(root, cache_admin.CacheEntry(link_entry, "onnx", 0, 0.0))
    assert (outside / "precious.txt").exists()


def test_clean_keeps_an_entry_whose_build_lock_is_held(root: Path) -> None:
    entry = next(e for e in list_entries(root) if e.kind == "tiny")
    age(entry.path, 10)
    with FileLock(str(entry.path) + ".lock"):
        report = clean(root, CleanPolicy(0, 7))
    assert [e.path for e in report.busy] == [entry.path] and entry.path.is_dir()


def test_clean_removes_staging_folders_of_dead_builds_only(root: Path) -> None:
    dead = root / "onnx" / ".bert-0123456789abcdef.k2j4h5.tmp"
    live = root / "onnx" / ".gpt2-0123456789abcdef.x9y8z7.tmp"
    lookalike = root / "onnx" / ".mine-0123456789abcdef.abcdef.tmp"  # no build lock beside it: foreign
    for folder in (dead, live, lookalike):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"half written")
    (root / "onnx" / "bert-0123456789abcdef.lock").touch()
    with FileLock(str(root / "onnx" / "gpt2-0123456789abcdef.lock")):
        report = clean(root, CleanPolicy(10**12, 7))  # far under the size limit: only the dead build goes
        assert [e.path for e in report.removed] == [dead] and live.is_dir() and not dead.exists()
    assert lookalike.is_dir() and next(e for e in list_entries(root) if e.path == lookalike).foreign
    # The lock of the dead build now guards nothing: it goes too; the live one's stays while held.
    assert not (root / "onnx" / "bert-0123456789abcdef.lock").exists()


def test_policy_from_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert CleanPolicy.from_env() == CleanPolicy(30 * 10**9, 7.0)
    assert cache_admin.clean_if_needed(root) is None  # far below 30 GB
    monkeypatch.setenv(cache_admin.THRESHOLD_ENV, "0")
    monkeypatch.setenv(cache_admin.MIN_AGE_ENV, "2")
    assert CleanPolicy.from_env() == CleanPolicy(0, 2.0)
    assert CleanPolicy.from_env(max_size_gb=1.5) == CleanPolicy(1_500_000_000, 2.0)
    tiny = next(e for e in list_entries(root) if e.kind == "tiny")
    age(tiny.path, 3)
    report = cache_admin.clean_if_needed(root)
    assert report is not None and [e.path for e in report.removed] == [tiny.path]
    monkeypatch.setenv(cache_admin.MIN_AGE_ENV, "a week")
    with pytest.raises(OptionError, match="CACHE_CLEANUP_MIN_AGE_DAYS='a week'"):
        CleanPolicy.from_env()


def test_cli_clean_dry_run_removes_nothing(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for entry in list_entries(root):
        age(entry.path, 20)
    before = sorted(e.path for e in list_entries(root))
    assert (
        cli("clean", "--cache-dir", str(root), "--max-size-gb", "0", "--min-age-days", "7", "--dry-run") == 0
    )
    out = capsys.readouterr().out
    assert out.count("would remove") == 3 and sorted(e.path for e in list_entries(root)) == before
    assert cli("clean", "--cache-dir", str(root), "--max-size-gb", "0", "--min-age-days", "7") == 0
    assert list_entries(root) == [] and "-> 0.0 MB" in capsys.readouterr().out
