"""Merging results databases from several machines into one, through DuckDB's ATTACH.

Each source run gets a fresh id from the target's sequence (ids are per file), keeps everything
else (host included), and is skipped when the target already holds its run_uid, so merging the
same source twice adds nothing. Each source is merged in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_hfmodels.cases.settings import DEFAULT_LOCK_TIMEOUT_S
from pytest_hfmodels.db.schema import rollback
from pytest_hfmodels.db.store import open_database
from pytest_hfmodels.errors import ResultsError

if TYPE_CHECKING:
    import duckdb

_SOURCE = "merge_source"
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


def _merge_one(con: duckdb.DuckDBPyConnection, source: Path) -> MergedSource:
    # Identifiers below come from our own schema, never from input; values travel as parameters.
    total_row = con.execute(f"SELECT count(*) FROM {_SOURCE}.test_runs").fetchone()
    total = int(total_row[0]) if total_row else 0
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"""CREATE TEMP TABLE run_map AS
                SELECT run_id AS old_id, nextval('test_runs_id_seq') AS new_id
                FROM (SELECT s.run_id FROM {_SOURCE}.test_runs s
                      WHERE s.run_uid NOT IN (SELECT run_uid FROM test_runs)
                      ORDER BY s.started_at, s.run_id)"""
        )
        run_columns = [name for name in _columns(con, "test_runs") if name != "run_id"]
        con.execute(
            f"""INSERT INTO test_runs (run_id, {_quoted(run_columns)})
                SELECT m.new_id, {_quoted(run_columns, "s.")}
                FROM {_SOURCE}.test_runs s JOIN run_map m ON s.run_id = m.old_id"""
        )
        for table, key in (("models", "model_id"), ("hardware_platforms", "hardware_key")):
            columns = _columns(con, table)
            updates = ", ".join(
                f'"{c}" = coalesce(EXCLUDED."{c}", {table}."{c}")' for c in columns if c != key
            )
            con.execute(
                f"""INSERT INTO {table} ({_quoted(columns)}) SELECT {_quoted(columns)} FROM {_SOURCE}.{table}
                    ON CONFLICT ({key}) DO UPDATE SET {updates}"""
            )
        for table in _RUN_TABLES:
            columns = [name for name in _columns(con, table) if name != "run_id"]
            con.execute(
                f"""INSERT INTO {table} (run_id, {_quoted(columns)})
                    SELECT m.new_id, {_quoted(columns, "s.")}
                    FROM {_SOURCE}.{table} s JOIN run_map m ON s.run_id = m.old_id"""
            )
        conversion_columns = _columns(con, "onnx_conversions")
        # The later export wins; counts take the larger side so that merging twice changes nothing.
        updates = ", ".join(
            f'"{c}" = CASE WHEN EXCLUDED.converted_at > onnx_conversions.converted_at '
            f'THEN EXCLUDED."{c}" ELSE onnx_conversions."{c}" END'
            for c in conversion_columns
            if c not in ("model_id", "onnx_path", "use_count", "last_used_at")
        )
        con.execute(
            f"""INSERT INTO onnx_conversions ({_quoted(conversion_columns)})
                SELECT {_quoted(conversion_columns)} FROM {_SOURCE}.onnx_conversions
                ON CONFLICT (model_id, onnx_path) DO UPDATE SET {updates},
                    use_count = greatest(EXCLUDED.use_count, onnx_conversions.use_count),
                    last_used_at = greatest(EXCLUDED.last_used_at, onnx_conversions.last_used_at)"""
        )
        added_row = con.execute("SELECT count(*) FROM run_map").fetchone()
        added = int(added_row[0]) if added_row else 0
        con.execute("DROP TABLE run_map")
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
    return MergedSource(source, added, total - added)


def merge_databases(
    sources: Sequence[Path],
    into: Path,
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> list[MergedSource]:
    """Copy every run of `sources` into `into` (created if needed); returns what each source added."""
    import duckdb

    target = into.resolve()
    for source in sources:
        if not source.is_file():
            raise ResultsError(f"{source}: no results database here")
        if source.resolve() == target:
            raise ResultsError(f"{source}: cannot merge a database into itself")
    merged: list[MergedSource] = []
    con = open_database(into, lock_timeout_s=lock_timeout_s)
    try:
        for source in sources:
            # Opening writable first upgrades an older source to the current schema.
            open_database(source, lock_timeout_s=lock_timeout_s).close()
            try:
                con.execute(f"ATTACH ? AS {_SOURCE} (READ_ONLY)", [str(source)])
            except duckdb.Error as exc:
                raise ResultsError(f"{source}: cannot attach: {exc}") from exc
            try:
                merged.append(_merge_one(con, source))
            except duckdb.Error as exc:
                raise ResultsError(f"{source}: could not merge into {into}: {exc}") from exc
            finally:
                con.execute(f"DETACH {_SOURCE}")
    finally:
        con.close()
    return merged
