"""`hfmodels db`: merge results databases, ingest spill files, describe a database."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pytest_hfmodels.cases.defaults import DEFAULT_DB_PATH, DEFAULT_LOCK_TIMEOUT_S
from pytest_hfmodels.cli.arguments import file_path, non_negative_float


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="merge, ingest into, or describe a results database")
    actions = parser.add_subparsers(dest="db_action", required=True, metavar="ACTION")

    merge = actions.add_parser("merge", help="copy the runs of several databases into one")
    merge.add_argument("sources", nargs="+", type=Path, metavar="SOURCE")
    merge.add_argument(
        "--into", type=file_path, required=True, metavar="PATH", help="target database (created if missing)"
    )
    merge.set_defaults(func=run_merge)

    ingest = actions.add_parser(
        "ingest",
        help="store results a locked database made a run spill, or a killed session left in its journal",
        description="With no file: every spill file and killed session's journal beside the database.",
    )
    ingest.add_argument("files", nargs="*", type=Path, metavar="SPILL_FILE")
    ingest.add_argument(
        "--db",
        type=file_path,
        default=None,
        metavar="PATH",
        help="database to store into (default: the results.duckdb beside the first file, "
        f"else {DEFAULT_DB_PATH})",
    )
    ingest.set_defaults(func=run_ingest)

    info = actions.add_parser("info", help="schema version, runs, rows and pending spill files")
    info.add_argument("--db", type=file_path, default=DEFAULT_DB_PATH, metavar="PATH")
    info.set_defaults(func=run_info)

    for sub in (merge, ingest, info):
        sub.add_argument(
            "--lock-timeout",
            type=non_negative_float,
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
    from pytest_hfmodels.db.journal import recover_journals
    from pytest_hfmodels.db.spill import pending_spills

    if args.db is not None:
        db_path = args.db
    else:
        db_path = args.files[0].parent / DEFAULT_DB_PATH.name if args.files else DEFAULT_DB_PATH
    files = args.files or pending_spills(db_path)
    ingested = ingest_spill(db_path, files, lock_timeout_s=args.lock_timeout) if files else []
    for item in ingested:
        where = f"run {item.run_id}" if item.run_id is not None else "onnx_conversions"
        print(f"{item.path}: {item.row_count} rows stored in {where} of {db_path}")
    if args.files:
        return 0
    recovered = recover_journals(db_path, lock_timeout_s=args.lock_timeout)
    for run in recovered:
        print(f"{run.journal}: {run.row_count} rows of a killed session, now interrupted run {run.run_id}")
    if not ingested and not recovered:
        print(f"nothing to ingest beside {db_path}")
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
