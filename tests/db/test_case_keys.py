"""One row per (run_id, case_id) without a PRIMARY KEY: schema version 9 and the checks that replace it.

Every test uses a real DuckDB file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from pytest_hfmodels.db.environment import RunEnvironment
from pytest_hfmodels.db.ingest import ingest_spill
from pytest_hfmodels.db.merge import merge_databases
from pytest_hfmodels.db.schema import MIGRATIONS, SCHEMA_VERSION, stored_version
from pytest_hfmodels.db.spill import rows_table, write_spill
from pytest_hfmodels.db.store import ROW_GROUP_ROWS, insert_run, open_database, write_run
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.results import Measurement
from tests.results_helpers import make_row

RUN_TABLES = ("hardware_compatibility", "performance_results")


def environment(run_uid: str = "run-a") -> RunEnvironment:
    return dataclasses.replace(RunEnvironment.capture(["pytest", "-q"], []), run_uid=run_uid)


def constraints(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT constraint_text FROM duckdb_constraints() WHERE table_name = ? ORDER BY constraint_text",
        [table],
    ).fetchall()
    return [str(text) for (text,) in rows]


def stored(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[object, ...]]:
    return con.execute(f"SELECT * FROM {table} ORDER BY run_id, case_id").fetchall()


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str, str]]:
    return [
        (str(name), str(kind), str(nullable))
        for name, kind, nullable in con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]


def test_a_v8_database_keeps_every_row_and_column_and_loses_only_the_primary_keys(tmp_path: Path) -> None:
    db = tmp_path / "v8.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
    for version in range(1, 9):
        for statement in MIGRATIONS[version]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [version])
    con.execute("INSERT INTO test_runs (run_uid, started_at, success) VALUES ('old', now(), false)")
    con.execute(
        "INSERT INTO hardware_compatibility (run_id, case_id, model_id, hardware_key, hardware, mode, "
        "status, error_class, scenario) VALUES "
        "(1, 'c1', 'org/a', 'cpu|', 'cpu', 'pipeline', 'pass', NULL, 'forward'), "
        "(1, 'c2', 'org/a', 'cpu|', 'cpu', 'onnxruntime', 'fail', 'OOM', 'forward')"
    )
    con.execute(
        "INSERT INTO performance_results (run_id, case_id, model_id, hardware_key, hardware, mode, "
        "latency_p50_ms, onnx_cache_hit, scenario) VALUES (1, 'c1', 'org/a', 'cpu|', 'cpu', 'pipeline', 4.5, "
        "false, 'forward')"
    )
    before = {table: (columns(con, table), stored(con, table)) for table in RUN_TABLES}
    kept = {
        table: [c for c in constraints(con, table) if not c.startswith("PRIMARY KEY")] for table in RUN_TABLES
    }
    assert all(len(constraints(con, table)) == len(kept[table]) + 1 for table in RUN_TABLES)
    con.close()

    upgraded = open_database(db)
    assert stored_version(upgraded) == SCHEMA_VERSION == 9
    for table in RUN_TABLES:
        assert (columns(upgraded, table), stored(upgraded, table)) == before[table]
        assert constraints(upgraded, table) == kept[table]  # NOT NULL and CHECK stay
    # The views over the rebuilt tables still answer.
    matrix = upgraded.execute("SELECT model_id, mode, status FROM compatibility_matrix ORDER BY mode")
    assert matrix.fetchall() == [("org/a", "onnxruntime", "fail"), ("org/a", "pipeline", "pass")]
    with pytest.raises(duckdb.ConstraintException):
        upgraded.execute(
            "INSERT INTO hardware_compatibility (run_id, case_id, model_id, hardware_key, hardware, mode, "
            "status) VALUES (1, 'c3', 'org/a', 'cpu|', 'cpu', 'pipeline', 'maybe')"
        )
    upgraded.close()
    assert write_run(db, environment(), [make_row("c1")]) == 2


def test_a_run_with_two_rows_of_one_case_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "results.duckdb"
    table = pa.concat_tables([rows_table([make_row("a"), make_row("b")]), rows_table([make_row("b")])])
    con = open_database(db)
    try:
        with pytest.raises(ResultsError, match=r"1 case ids appear more than once .*'b'"):
            insert_run(con, environment(), table, 0)
        assert con.execute("SELECT count(*) FROM test_runs").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM hardware_compatibility").fetchone() == (0,)
    finally:
        con.close()
    # A spill file is checked the same way, and kept.
    spill = write_spill(tmp_path, table, kind="run", environment=environment(), exit_status=0)
    with pytest.raises(ResultsError, match="more than once"):
        ingest_spill(db, [spill])
    assert spill.exists()


def test_rows_of_one_case_are_one_row_and_runs_share_case_ids(tmp_path: Path) -> None:
    db = tmp_path / "results.duckdb"
    measured = Measurement(latency_p50_ms=1.0)
    journaled_twice = [make_row("a", status="fail"), make_row("a", measurement=measured)]
    first = write_run(db, environment("one"), journaled_twice)
    second = write_run(db, environment("two"), [make_row("a", measurement=measured)])
    con = open_database(db, read_only=True)
    try:
        for table in RUN_TABLES:
            assert con.execute(f"SELECT run_id, case_id FROM {table} ORDER BY run_id").fetchall() == [
                (first, "a"),
                (second, "a"),
            ]
    finally:
        con.close()


def test_a_merge_refuses_a_source_run_with_two_rows_of_one_case(tmp_path: Path) -> None:
    source, into = tmp_path / "source.duckdb", tmp_path / "all.duckdb"
    write_run(source, environment(), [make_row("a")])
    con = duckdb.connect(str(source))
    con.execute("INSERT INTO hardware_compatibility SELECT * FROM hardware_compatibility")  # by other means
    con.close()
    with pytest.raises(ResultsError, match=r"source\.duckdb: run 1 has more than one row of case 'a'"):
        merge_databases([source], into)
    assert not into.exists()


def test_a_run_is_written_in_row_groups_filled_while_inserting(tmp_path: Path) -> None:
    probe = duckdb.connect()
    try:
        probe.execute(f"ATTACH ':memory:' AS probe (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
    except duckdb.BinderException:
        pytest.skip(f"DuckDB {duckdb.__version__} has no ROW_GROUP_SIZE: its default row groups are used")
    finally:
        probe.close()
    db = tmp_path / "results.duckdb"
    rows = [make_row(f"case-{index}") for index in range(ROW_GROUP_ROWS + 10)]
    write_run(db, environment(), rows)
    con = duckdb.connect(str(db), read_only=True)
    try:
        groups = con.execute(
            "SELECT row_group_id, max(count) FROM pragma_storage_info('hardware_compatibility') "
            "GROUP BY row_group_id ORDER BY row_group_id"
        ).fetchall()
        distinct = con.execute("SELECT count(DISTINCT case_id) FROM hardware_compatibility").fetchone()
    finally:
        con.close()
    assert distinct == (len(rows),)
    assert groups == [(0, ROW_GROUP_ROWS), (1, 10)]
