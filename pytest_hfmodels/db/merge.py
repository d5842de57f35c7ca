"""Merging results databases from several machines into one, through DuckDB's ATTACH.

Each source run gets a fresh id from the target's sequence (ids are per file), keeps everything
else (host included), and is skipped when the target already holds its run_uid, so merging the
same source twice adds nothing.

A merge is all or nothing: every source is opened (and so checked) before the target is touched,
all of them are merged in one transaction, and a new target is built under a temporary name beside
it and moved into place only at the end. A failed merge leaves an existing target as it was and
no new file behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_hfmodels.cases.defaults import DEFAULT_LOCK_TIMEOUT_S
from pytest_hfmodels.db.schema import rollback
from pytest_hfmodels.db.store import open_database
from pytest_hfmodels.errors import ResultsError

if TYPE_CHECKING:
    import duckdb

#: the alias of the i-th source, attached for the whole merge
_SOURCE = "merge_source_{}"
# Tables whose rows belong to a run: copied with the run id remapped.
_RUN_TABLES = ("hardware_compatibility", "performance_results")


@dataclass(frozen=True)
class MergedSource:
    path: Path
    runs_added: int
    runs_already_present: int


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        """SELECT column_name FROM information_schema.columns
           WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = ?
           ORDER BY ordinal_position""",
        [table],
    ).fetchall()
    return [str(name) for (name,) in rows]


def _quoted(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{name}"' for name in names)


def _check_one_row_per_case(con: duckdb.DuckDBPyConnection, source: Path, alias: str, table: str) -> None:
    """Refuse a source run with two rows of one case: no index keeps (run_id, case_id) unique.

    Every run this package writes is checked before it is inserted (`store.insert_run`); this
    catches rows written into the source by other means, before any reaches the target.
    """
    repeated = con.execute(
        f"""SELECT s.run_id, s.case_id FROM {alias}.{table} s JOIN run_map m ON s.run_id = m.old_id
            GROUP BY s.run_id, s.case_id HAVING count(*) > 1 LIMIT 1"""
    ).fetchone()
    if repeated:
        raise ResultsError(
            f"{source}: run {repeated[0]} has more than one row of case {repeated[1]!r} in {table}"
        )


def _merge_one(con: duckdb.DuckDBPyConnection, source: Path, alias: str) -> MergedSource:
    """Copy the runs of `source`, attached as `alias`, inside the caller's transaction."""
    # Identifiers below come from our own schema, never from input; values travel as parameters.
    total_row = con.execute(f"SELECT count(*) FROM {alias}.test_runs").fetchone()
    total = int(total_row[0]) if total_row else 0
    con.execute(
        f"""CREATE TEMP TABLE run_map AS
            SELECT run_id AS old_id, nextval('test_runs_id_seq') AS new_id
            FROM (SELECT s.run_id FROM {alias}.test_runs s
                  WHERE s.run_uid NOT IN (SELECT run_uid FROM test_runs)
                  ORDER BY s.started_at, s.run_id)"""
    )
    run_columns = [name for name in _columns(con, "test_runs") if name != "run_id"]
    con.execute(
        f"""INSERT INTO test_runs (run_id, {_quoted(run_columns)})
            SELECT m.new_id, {_quoted(run_columns, "s.")}
            FROM {alias}.test_runs s JOIN run_map m ON s.run_id = m.old_id"""
    )
    for table, key in (("models", "model_id"), ("hardware_platforms", "hardware_key")):
        columns = _columns(con, table)
        updates = ", ".join(f'"{c}" = coalesce(EXCLUDED."{c}", {table}."{c}")' for c in columns if c != key)
        con.execute(
            f"""INSERT INTO {table} ({_quoted(columns)}) SELECT {_quoted(columns)} FROM {alias}.{table}
                ON CONFLICT ({key}) DO UPDATE SET {updates}"""
        )
    for table in _RUN_TABLES:
        _check_one_row_per_case(con, source, alias, table)
        columns = [name for name in _columns(con, table) if name != "run_id"]
        con.execute(
            f"""INSERT INTO {table} (run_id, {_quoted(columns)})
                SELECT m.new_id, {_quoted(columns, "s.")}
                FROM {alias}.{table} s JOIN run_map m ON s.run_id = m.old_id"""
        )
    # Conversion attempts: an attempt is the same one when its model, file, time and hash agree
    # (merging twice adds nothing); it gets a new id here. The same successful conversion seen
    # by both sides keeps the larger use count and the later use.
    attempt_columns = [name for name in _columns(con, "onnx_conversions") if name != "id"]
    con.execute(
        f"""UPDATE onnx_conversions c SET use_count = greatest(c.use_count, s.use_count),
                last_used = greatest(c.last_used, s.last_used)
            FROM {alias}.onnx_conversions s
            WHERE c.model_id = s.model_id AND c.onnx_path = s.onnx_path
                  AND c.conversion_time = s.conversion_time AND c.sha256 IS NOT DISTINCT FROM s.sha256"""
    )
    con.execute(
        f"""INSERT INTO onnx_conversions ({_quoted(attempt_columns)})
            SELECT {_quoted(attempt_columns, "s.")} FROM {alias}.onnx_conversions s
            WHERE NOT EXISTS (
                SELECT 1 FROM onnx_conversions c
                WHERE c.model_id = s.model_id AND c.onnx_path = s.onnx_path
                      AND c.conversion_time = s.conversion_time AND c.sha256 IS NOT DISTINCT FROM s.sha256)
            ORDER BY s.conversion_time, s.id"""
    )
    hub_columns = _columns(con, "onnx_hub_files")
    # The later check wins.
    updates = ", ".join(
        f'"{c}" = CASE WHEN EXCLUDED.checked_at > onnx_hub_files.checked_at '
        f'THEN EXCLUDED."{c}" ELSE onnx_hub_files."{c}" END'
        for c in hub_columns
        if c not in ("model_id", "onnx_path")
    )
    con.execute(
        f"""INSERT INTO onnx_hub_files ({_quoted(hub_columns)})
            SELECT {_quoted(hub_columns)} FROM {alias}.onnx_hub_files
            ON CONFLICT (model_id, onnx_path) DO UPDATE SET {updates}"""
    )
    added_row = con.execute("SELECT count(*) FROM run_map").fetchone()
    added = int(added_row[0]) if added_row else 0
    con.execute("DROP TABLE run_map")
    return MergedSource(source, added, total - added)


def merge_databases(
    sources: Sequence[Path],
    into: Path,
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> list[MergedSource]:
    """Copy every run of `sources` into `into` (created if needed); returns what each source added."""
    target = into.resolve()
    for source in sources:
        if not source.is_file():
            raise ResultsError(f"{source}: no results database here")
        if source.resolve() == target:
            raise ResultsError(f"{source}: cannot merge a database into itself")
    for source in sources:
        # Before the target is touched: a source that is no database fails here. Opening writable
        # also upgrades an older source to the current schema, which ATTACH cannot do.
        open_database(source, lock_timeout_s=lock_timeout_s).close()
    if into.exists():
        return _merge_all(sources, into, into, lock_timeout_s)
    created_folders = [folder for folder in into.absolute().parents if not folder.exists()]
    # A fresh name each time: a file left by a killed merge must never be mistaken for this one's.
    staged = into.with_name(f".{into.name}.{secrets.token_hex(6)}.merging")
    try:
        merged = _merge_all(sources, staged, into, lock_timeout_s)
        _publish(staged, into)
    finally:
        for leftover in (staged, staged.with_name(staged.name + ".wal")):
            leftover.unlink(missing_ok=True)
        if not into.exists():  # failed: the folders this merge made go too, innermost first
            for folder in created_folders:
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
    return merged


def _merge_all(sources: Sequence[Path], path: Path, into: Path, lock_timeout_s: float) -> list[MergedSource]:
    """Merge `sources` into the database at `path` (which becomes `into`) in one transaction."""
    import duckdb

    merged: list[MergedSource] = []
    con = open_database(path, lock_timeout_s=lock_timeout_s)
    try:
        # Every source attached before the transaction and detached after it (closing the
        # connection detaches them): DuckDB 2.0.0 refuses to detach, and 1.4 to attach again
        # under one name, a database the open transaction has read.
        # A file named twice is attached once (DuckDB attaches a file under one name only); its
        # second merge finds every run present.
        attached: dict[Path, str] = {}
        aliases: list[str] = []
        for source in sources:
            resolved = source.resolve()
            if resolved not in attached:
                attached[resolved] = _SOURCE.format(len(attached))
                try:
                    con.execute(f"ATTACH ? AS {attached[resolved]} (READ_ONLY)", [str(source)])
                except duckdb.Error as exc:
                    raise ResultsError(f"{source}: cannot attach: {exc}") from exc
            aliases.append(attached[resolved])
        con.execute("BEGIN TRANSACTION")
        try:
            for source, alias in zip(sources, aliases, strict=True):
                try:
                    merged.append(_merge_one(con, source, alias))
                except duckdb.Error as exc:
                    raise ResultsError(f"{source}: could not merge into {into}: {exc}") from exc
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
    finally:
        con.close()
    return merged


def _publish(staged: Path, into: Path) -> None:
    """Give the new database its name; never over a file another process made there meanwhile."""
    try:
        os.link(staged, into)  # fails when `into` exists, unlike a rename
    except FileExistsError:
        raise ResultsError(
            f"{into}: created by another process during the merge; merge into it again"
        ) from None
    except OSError:  # a filesystem without hard links: check, then rename
        if into.exists():
            raise ResultsError(
                f"{into}: created by another process during the merge; merge into it again"
            ) from None
        os.replace(staged, into)
