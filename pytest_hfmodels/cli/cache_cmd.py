"""`hfmodels cache ls | verify | clean`: what the cache holds, whether conversions are intact, clean-up."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pytest_hfmodels.cache.store import CACHE_ENV, default_cache_root
from pytest_hfmodels.cli.arguments import folder_path, non_negative_float
from pytest_hfmodels.errors import OptionError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="list, verify or clean the cache of tiny models and conversions",
        description="The cache root is --cache-dir, else $HFMODELS_CACHE, else ~/.cache/hfmodels.",
    )
    parser.add_argument("action", choices=("ls", "verify", "clean"))
    parser.add_argument("--cache-dir", type=folder_path, default=None, metavar="DIR", help="cache root")
    parser.add_argument(
        "--max-size-gb",
        type=non_negative_float,
        default=None,
        metavar="N",
        help="clean: remove idle entries while the cache is larger (default: $CACHE_CLEANUP_THRESHOLD or 30)",
    )
    parser.add_argument(
        "--min-age-days",
        type=non_negative_float,
        default=None,
        metavar="D",
        help="clean: only entries idle this long (default: $CACHE_CLEANUP_MIN_AGE_DAYS or 7)",
    )
    parser.add_argument("--dry-run", action="store_true", help="clean: say what would go, remove nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pytest_hfmodels.cache import admin as cache_admin

    root: Path = args.cache_dir or default_cache_root()
    if root.exists() and not root.is_dir():  # --cache-dir was checked while parsing; the default was not
        raise OptionError(f"cache root {root} (${CACHE_ENV} or the default) is a file, not a folder")
    if args.action == "ls":
        entries = cache_admin.list_entries(root)
        for entry in entries:
            idle = f"{entry.idle_days():7.1f}d"
            print(f"{entry.kind:8} {_mb(entry.size):>10} {idle}  {entry.path.name}{_about(entry)}")
        ours = [e for e in entries if not e.foreign]
        foreign = len(entries) - len(ours)
        print(
            f"{len(ours)} entries, {_mb(sum(e.size for e in ours))} in {root}"
            + (f"; {foreign} foreign folders, left alone" if foreign else "")
        )
        return 0
    if args.action == "verify":
        results = cache_admin.verify_entries(root)
        bad = [r for r in results if r.ok is False]
        for result in results:
            if result.ok is not None:
                state = "ok" if result.ok else "CORRUPT: " + "; ".join(result.problems)
                print(f"{result.entry.kind}/{result.entry.path.name}: {state}")
        checked = sum(r.ok is not None for r in results)
        print(f"{checked} entries rehashed, {len(bad)} corrupt")
        return 1 if bad else 0
    policy = cache_admin.CleanPolicy.from_env(args.max_size_gb, args.min_age_days)
    report = cache_admin.clean(root, policy, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for entry in report.removed:
        print(f"{verb} {entry.kind}/{entry.path.name} ({_mb(entry.size)}, idle {entry.idle_days():.1f} days)")
    for entry in report.busy:
        print(f"kept {entry.kind}/{entry.path.name}: a build holds its lock")
    for lock in report.locks_removed:
        print(f"removed {lock.parent.name}/{lock.name}: the lock of a build that is gone")
    print(
        f"{root}: {_mb(report.size_before)} -> {_mb(report.size_after)} "
        f"(limit {_mb(policy.max_size_bytes)}, idle at least {policy.min_age_days:g} days)"
    )
    return 0


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _about(entry: Any) -> str:
    if entry.foreign:
        return "  (foreign: not made by this cache, left alone)"
    if entry.partial:
        return "  (staging: a build in progress, or left by an interrupted one)"
    if entry.manifest is None:
        return "  (manifest unreadable: `hfmodels cache verify`)"
    record = entry.manifest
    if "exporter" not in record:
        return ""
    return f"  {record.get('model_id')} ({record['exporter']}, opset {record.get('opset')})"
