"""`hfmodels db`: merge results databases, ingest spill files, describe a database."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pytest_hfmodels.cases.settings import DEFAULT_DB_PATH, DEFAULT_LOCK_TIMEOUT_S


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="merge, ingest into, or describe a results database")
    actions = parser.add_subparsers(dest="db_action", required=True, metavar="ACTION")

    merge = actions.add_parser("merge", help="copy the runs of several databases into one")
    merge.add_argument("sources", nargs="+", type=Path, metavar="SOURCE")
    merge.add_argument(
        "--into", type=Path, required=True, metavar="PATH", help="target database (created if missing)"
    )
    merge.set_defaults(func=run_merge)

    ingest = actions.add_parser("ingest", help="store results that a locked database made a run spill")
    ingest.add_argument("files", nargs="+", type=Path, metavar="SPILL_FILE")
    ingest.add_argument(
        "--db",
        type=Path,
        default=None,
        metavar="PATH",
        help="database to store into (default: the results.duckdb beside the first file)",
    )
    ingest.set_defaults(func=run_ingest)

    info = actions.add_parser("info", help="schema version, runs, rows and pending spill files")
    info.add_argument("--db", type=Path, default=DEFAULT_DB_PATH, metavar="PATH")
    info.set_defaults(func=run_info)

    for sub in (merge, ingest, info):
        sub.add_argument(
            "--lock-timeout",
            type=float,
            default=DEFAULT_LOCK_TIMEOUT_S,
            metavar="SECONDS",
            help="how long to wait for a database another process holds",
        )


def run_merge(args: argparse.Namespace) -> int:
    from pytest_hfmodels.db.merge import merge_databases

    for merged in merge_databases(args.sources, args.into, lock_timeout_s=args.lock_timeout):
        print(f"{merged.path}: {merged.runs_added} runs added, {merged.runs_already_present} already present")
    return 0


def run_ingest(args: argparse.Namespace) -> int:
    from pytest_hfmodels.db.ingest import ingest_spill

    db_path = args.db if args.db is not None else args.files[0].parent / DEFAULT_DB_PATH.name
    for item in ingest_spill(db_path, args.files, lock_timeout_s=args.lock_timeout):
        where = f"run {item.run_id}" if item.run_id is not None else "onnx_conversions"
        print(f"{item.path}: {item.row_count} rows stored in {where} of {db_path}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from pytest_hfmodels.db.schema import stored_version
    from pytest_hfmodels.db.spill import pending_spills
    from pytest_hfmodels.db.store import open_database

    con = open_database(args.db, read_only=True, lock_timeout_s=args.lock_timeout)
    try:
        version = stored_version(con)
        counts = {
            table: con.execute(f"SELECT count(*) FROM {table}").fetchone()
            for table in (
                "test_runs",
                "hardware_compatibility",
                "performance_results",
                "models",
                "hardware_platforms",
                "onnx_conversions",
            )
        }
        latest = con.execute(
            "SELECT run_id, started_at, host FROM test_runs ORDER BY started_at DESC, run_id DESC LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    print(f"{args.db}: schema version {version}")
    for table, count in counts.items():
        print(f"  {table}: {count[0] if count else 0} rows")
    if latest:
        print(f"  latest run: {latest[0]} started {latest[1]:%Y-%m-%d %H:%M:%S} UTC on {latest[2]}")
    spills = pending_spills(args.db)
    if spills:
        print(
            f"  {len(spills)} spill files waiting: hfmodels db ingest --db {args.db} "
            + " ".join(str(path) for path in spills)
        )
    return 0
