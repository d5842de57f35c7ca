"""The results database: schema and migrations, one-transaction writes, spill and ingest, merge.

Every test uses a real DuckDB file; a lock is held by a real second Python process.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from pytest_hfmodels import cli
from pytest_hfmodels.cache.manifest import write_manifest
from pytest_hfmodels.db.conversions import OnnxConversion, conversions_of, record_conversion, record_onnx_use
from pytest_hfmodels.db.environment import HF_TOKEN_PATTERN, RunEnvironment
from pytest_hfmodels.db.ingest import ingest_spill
from pytest_hfmodels.db.journal import RunJournal, read_journal
from pytest_hfmodels.db.merge import merge_databases
from pytest_hfmodels.db.schema import MIGRATIONS, SCHEMA_V1, SCHEMA_VERSION, stored_version
from pytest_hfmodels.db.spill import (
    TOKEN_PREFIX,
    pending_spills,
    read_spill,
    row_schema,
    rows_table,
    write_spill,
)
from pytest_hfmodels.db.store import open_database, store_run, write_run
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.results import Measurement, ResultRow
from tests.results_helpers import hold_database, make_row, release

HARDWARE = [
    {"label": "cpu", "kind": "cpu", "name": "Test CPU", "memory_mb": 2048, "driver": None, "versions": {}}
]


def environment(host: str | None = None) -> RunEnvironment:
    env = RunEnvironment.capture(["pytest", "-q"], HARDWARE)
    return dataclasses.replace(env, host=host) if host else env


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "results" / "results.duckdb"


@pytest.fixture
def lock_holder(db: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process that holds the database open until released."""
    open_database(db).close()
    holder = hold_database(db)
    yield holder
    release(holder)


def count(db: Path, sql: str, params: list[object] | None = None) -> object:
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(sql, params or []).fetchone()
    finally:
        con.close()
    assert row is not None
    return row[0]


def test_a_new_database_gets_the_current_schema(db: Path) -> None:
    con = open_database(db)
    assert stored_version(con) == SCHEMA_VERSION
    con.close()


def test_a_v1_database_is_upgraded_and_keeps_its_rows(db: Path) -> None:
    db.parent.mkdir(parents=True)
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
    con.execute("INSERT INTO schema_version VALUES (1, now()::TIMESTAMP)")
    for statement in SCHEMA_V1:
        con.execute(statement)
    con.execute(
        "INSERT INTO test_runs (run_uid, started_at, host, success) VALUES ('old', now()::TIMESTAMP, "
        "'old-host', true)"
    )
    con.execute(
        "INSERT INTO performance_results (run_id, case_id, model_id, hardware_key, hardware, mode, "
        "latency_p50_ms) VALUES (1, 'c1', 'org/old', 'cpu|', 'cpu', 'pipeline', 4.5)"
    )
    con.close()

    upgraded = open_database(db)
    assert stored_version(upgraded) == SCHEMA_VERSION
    assert upgraded.execute("SELECT latency_p50_ms, onnx_source FROM performance_results").fetchall() == [
        (4.5, None)
    ]
    assert upgraded.execute("SELECT get_onnx_status('org/old')").fetchone() == ("unknown",)
    upgraded.close()
    # The next run continues the sequence after the old run.
    assert write_run(db, environment(), [make_row("c2")]) == 2


def test_a_v7_database_keeps_its_conversions_under_the_original_columns(db: Path) -> None:
    db.parent.mkdir(parents=True)
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
    for version in range(1, 8):
        for statement in MIGRATIONS[version]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [version])
    con.execute(
        "INSERT INTO onnx_conversions (model_id, onnx_path, success, opset, converted_at, use_count, "
        "conversion_time_s) VALUES ('org/a', 'model.onnx', true, 17, TIMESTAMP '2026-01-02 03:04:05', 4, 2.5)"
    )
    con.execute("INSERT INTO test_runs (run_uid, started_at, success) VALUES ('old', now()::TIMESTAMP, true)")
    con.execute(
        "INSERT INTO performance_results (run_id, case_id, model_id, hardware_key, hardware, mode, "
        "latency_p50_ms, onnx_source, onnx_conversion_status, onnx_conversion_time) "
        "VALUES (1, 'c1', 'org/a', 'cpu|', 'cpu', 'onnxruntime', 1.0, 'cache', 'cached', 2.5)"
    )
    con.close()
    upgraded = open_database(db)
    assert upgraded.execute(
        "SELECT id, model_id, conversion_success, verification_status, opset_version, conversion_time, "
        "use_count, conversion_seconds FROM onnx_conversions"
    ).fetchall() == [(1, "org/a", True, "validated", 17, datetime(2026, 1, 2, 3, 4, 5), 4, 2.5)]
    # 'cache' said this run reused the file: a column of its own now; the file came from a conversion.
    assert upgraded.execute(
        "SELECT onnx_source, onnx_conversion_status, onnx_cache_hit, onnx_conversion_seconds "
        "FROM performance_results"
    ).fetchall() == [("pytorch_conversion", "converted", True, 2.5)]
    assert upgraded.execute("SELECT get_onnx_status('org/a')").fetchone() == ("converted",)
    upgraded.close()


def test_a_v5_database_gets_the_weights_of_its_rows_from_their_source(db: Path) -> None:
    db.parent.mkdir(parents=True)
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
    for version in range(1, 6):
        for statement in MIGRATIONS[version]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [version])
    con.execute("INSERT INTO test_runs (run_uid, started_at, success) VALUES ('old', now()::TIMESTAMP, true)")
    con.execute(
        "INSERT INTO models (model_id, source) VALUES ('tiny/bert-tiny', 'tiny'), ('org/bert', 'hub')"
    )
    for case, model in (("c1", "tiny/bert-tiny"), ("c2", "org/bert")):
        con.execute(
            "INSERT INTO performance_results (run_id, case_id, model_id, hardware_key, hardware, mode, "
            "latency_p50_ms) VALUES (1, ?, ?, 'cpu|', 'cpu', 'pipeline', 1.0)",
            [case, model],
        )
    con.close()

    upgraded = open_database(db)
    assert stored_version(upgraded) == SCHEMA_VERSION
    weights = upgraded.execute("SELECT case_id, weights FROM performance_results ORDER BY case_id").fetchall()
    assert weights == [("c1", "random"), ("c2", "pretrained")]
    upgraded.close()


def test_rows_store_their_weights_and_an_old_spill_file_gets_them_from_the_source(
    db: Path, tmp_path: Path
) -> None:
    measured = Measurement(latency_p50_ms=2.0)
    rows = [
        make_row("hub-random", model="org/bert", source="hub", weights="random", measurement=measured),
        make_row("hub", model="org/bert", source="hub", weights="pretrained", measurement=measured),
    ]
    write_run(db, environment(), rows)
    stored = "SELECT weights FROM performance_results WHERE case_id = ?"
    assert (count(db, stored, ["hub-random"]), count(db, stored, ["hub"])) == ("random", "pretrained")

    # A spill file written before rows had weights: its rows are ingested with their source's.
    old_rows = [
        make_row("old-tiny", measurement=measured),
        make_row("old-hub", source="hub", measurement=measured),
    ]
    table = rows_table(old_rows).drop_columns(["weights"])
    spill = write_spill(tmp_path / "spills", table, kind="run", environment=environment())
    # A journal's row from before rows had weights reads as not known, until stored.
    journal_row = {k: v for k, v in old_rows[0].to_dict().items() if k != "weights"}
    assert ResultRow.from_dict(journal_row).weights is None
    assert read_spill(spill).table.column("weights").null_count == 2
    ingest_spill(db, [spill])
    assert (count(db, stored, ["old-tiny"]), count(db, stored, ["old-hub"])) == ("random", "pretrained")


def test_an_export_of_a_hub_config_with_random_weights_is_not_that_models_conversion(tmp_path: Path) -> None:
    folder = tmp_path / "onnx" / "bert-0123"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx")
    write_manifest(folder, "onnx", folder.name, {"seconds": 1.0, "opset": 18, "exporter": "dynamo"})
    exported = Measurement(
        latency_p50_ms=1.0, onnx_local_path=str(folder / "model.onnx"), onnx_source="pytorch_conversion"
    )
    rows = [
        make_row(f"{weights}-case", model="org/bert", source="hub", weights=weights, measurement=exported)
        for weights in ("random", "pretrained")
    ]
    conversions, uses = conversions_of(rows)
    assert [c.model_id for c in conversions] == ["org/bert"] and uses == {("org/bert", "model.onnx"): 1}


def test_a_failed_migration_changes_nothing(db: Path) -> None:
    db.parent.mkdir(parents=True)
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)")
    con.execute("INSERT INTO schema_version VALUES (1, now()::TIMESTAMP)")
    for statement in SCHEMA_V1:
        con.execute(statement)
    con.execute("CREATE VIEW model_onnx_registry AS SELECT 1 AS x")  # collides with version 2
    con.close()

    with pytest.raises(ResultsError, match=r"results\.duckdb: could not migrate"):
        open_database(db)
    con = duckdb.connect(str(db), read_only=True)
    assert stored_version(con) == 1
    columns = [row[0] for row in con.execute("DESCRIBE performance_results").fetchall()]
    assert "onnx_source" not in columns
    con.close()


def test_a_newer_database_is_refused(db: Path) -> None:
    open_database(db).close()
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [SCHEMA_VERSION + 1])
    con.close()
    with pytest.raises(ResultsError, match="newer than this pytest-hfmodels"):
        open_database(db)


def test_write_run_stores_every_case_and_only_measured_numbers(db: Path) -> None:
    rows = [
        make_row("a", measurement=Measurement(batch_size=1, latency_p50_ms=3.0, latency_mean_ms=3.2)),
        make_row("b", status="fail", error_class="RuntimeError", error_message="boom"),
        make_row("c", status="skip", mode="openvino", error_message="openvino is not installed"),
    ]
    run_id = write_run(db, environment(), rows, exit_status=1)
    assert run_id == 1
    assert count(db, "SELECT count(*) FROM hardware_compatibility WHERE run_id = ?", [run_id]) == 3
    assert count(db, "SELECT count(*) FROM performance_results") == 1
    assert count(db, "SELECT latency_p90_ms IS NULL FROM performance_results") is True
    assert count(db, "SELECT success FROM test_runs") is False
    assert count(db, "SELECT memory_mb FROM hardware_platforms WHERE hardware_key = 'cpu|Test CPU'") == 2048


def test_writing_the_same_run_twice_stores_it_once(db: Path) -> None:
    env = environment()
    assert write_run(db, env, [make_row("a")]) == write_run(db, env, [make_row("a")])
    assert count(db, "SELECT count(*) FROM test_runs") == 1


def test_secrets_never_reach_the_database(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "plainsecretvalue123")
    env = RunEnvironment.capture(
        ["pytest", "--token", "plainsecretvalue123", "--hf-token=hf_abcdefghijklmn"], []
    )
    row = make_row("a", status="fail", error_message="401 for hf_ABCDEFGHIJKLMNOP and plainsecretvalue123")
    write_run(db, env, [row])
    con = duckdb.connect(str(db), read_only=True)
    text = str(
        con.execute("SELECT * FROM test_runs").fetchall()
        + con.execute("SELECT * FROM hardware_compatibility").fetchall()
    )
    con.close()
    assert "plainsecretvalue123" not in text and "hf_ABCDEFGHIJKLMNOP" not in text
    assert "hf_abcdefghijklmn" not in text and "***" in text


def _leaky_row(case: str, leak: str) -> ResultRow:
    """A row with `leak` in every text field (status aside: the database checks its values)."""
    base = make_row(case, status="fail", measurement=Measurement(latency_p50_ms=1.0))
    text = {f.name for f in row_schema() if f.type == pa.string()}

    def leaked(cls: Any) -> dict[str, Any]:
        return {f.name: f"{f.name} {leak}" for f in dataclasses.fields(cls) if f.name in text}

    row_text, measurement_text = leaked(ResultRow), leaked(Measurement)
    row_text.pop("status")
    return dataclasses.replace(
        base, **row_text, measurement=dataclasses.replace(base.measurement, **measurement_text)
    )


def test_secrets_are_scrubbed_from_every_text_column_and_clean_text_is_kept(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "plainsecretvalue123")
    # Columns without the token prefix skip the regex: the prefix must be where every token starts.
    assert HF_TOKEN_PATTERN.pattern.startswith(TOKEN_PREFIX)
    leaky = _leaky_row("leaky", "401 for hf_ABCDEFGHIJKLMNOP and plainsecretvalue123")
    # "hf_" without a token after it, in one column; the other columns have no prefix at all.
    clean = make_row(
        "clean", error_message="hf_hub_download failed", measurement=Measurement(precision="fp32")
    )
    table = rows_table([leaky, clean])
    text_columns = [field.name for field in table.schema if field.type == pa.string()]
    assert len(text_columns) > 20
    for name in text_columns:
        stored_leaky, stored_clean = table.column(name).to_pylist()
        if name != "status":
            assert "plainsecretvalue123" not in stored_leaky and "hf_ABCDEFGHIJKLMNOP" not in stored_leaky
            assert stored_leaky.count("***") == 2, name
        assert stored_clean == rows_table([clean]).column(name)[0].as_py()
    assert table.column("error_message")[1].as_py() == "hf_hub_download failed"

    write_run(db, environment(), [leaky, clean])
    con = duckdb.connect(str(db), read_only=True)
    tables = ["test_runs", "models", "hardware_platforms", "hardware_compatibility", "performance_results"]
    text = str([con.execute(f"SELECT * FROM {name}").fetchall() for name in tables])
    con.close()
    assert "plainsecretvalue123" not in text and "hf_ABCDEFGHIJKLMNOP" not in text
    assert "output_sample 401 for *** and ***" in text  # a column of schema version 7 too


def test_a_10k_row_run_is_stored_exactly_once_with_the_last_row_of_each_case(
    db: Path, tmp_path: Path
) -> None:
    rows = [make_row(f"case-{i:05d}", measurement=Measurement(latency_p50_ms=i + 1.0)) for i in range(10_000)]
    # The recorder sends a case again when a later phase fails it: that last row is the case's.
    rows += [
        make_row(f"case-{i:05d}", status="fail", error_message="teardown") for i in range(0, 10_000, 100)
    ]
    env = environment()
    run_id = write_run(db, env, rows)
    assert write_run(db, env, rows) == run_id
    spill = write_spill(tmp_path / "spills", rows_table(rows), kind="run", environment=env)
    assert [item.run_id for item in ingest_spill(db, [spill])] == [run_id]
    assert count(db, "SELECT count(*) FROM test_runs") == 1
    assert count(db, "SELECT count(DISTINCT case_id) FROM hardware_compatibility") == 10_000
    assert count(db, "SELECT count(*) FROM hardware_compatibility") == 10_000
    assert count(db, "SELECT count(*) FROM hardware_compatibility WHERE status = 'fail'") == 100
    assert count(db, "SELECT count(*) FROM performance_results") == 9_900  # a failed case measured nothing
    assert count(db, "SELECT sum(latency_p50_ms) FROM performance_results") == sum(
        i + 1.0 for i in range(10_000) if i % 100
    )
    assert count(db, "SELECT count(*) FROM models") == 1
    assert count(db, "SELECT count(*) FROM hardware_platforms") == 1


def _every_field_set(case: str) -> ResultRow:
    """A row with a value in every field, each of its annotated type."""
    samples: dict[str, object] = {"str": "text", "float": 1.5, "int": 3, "bool": True}

    def values(cls: type[object]) -> dict[str, object]:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        return {
            f.name: samples[str(f.type).replace(" | None", "")] for f in fields if f.name != "measurement"
        }

    row_values = values(ResultRow) | {"case_id": case, "status": "pass"}
    return ResultRow(**row_values, measurement=Measurement(**values(Measurement)))  # type: ignore[arg-type]


def test_a_journal_line_is_the_rows_dict_and_reads_back_as_the_same_row(db: Path) -> None:
    rows = [_every_field_set("full"), make_row("sparse")]
    journal = RunJournal(db, environment())
    for row in rows:
        journal.append(row)
    journal.close(remove=False)
    lines = journal.path.read_text().splitlines()
    for line, row in zip(lines[1:], rows, strict=True):
        # Key for key and in the same order as dataclasses.asdict writes them.
        assert line == json.dumps({"row": row.to_dict()}, default=str)
    assert read_journal(journal.path)[1] == rows


def test_a_journal_line_that_is_not_json_is_named_by_its_number(db: Path) -> None:
    journal = RunJournal(db, environment())
    journal.append(make_row("a"))
    journal.close(remove=False)
    with journal.path.open("a") as handle:
        handle.write("\n{not json\n")  # a blank line still counts
    with pytest.raises(ResultsError, match=rf"{journal.path.name}:4: not a journal line"):
        read_journal(journal.path)


def test_compatibility_matrix_shows_the_latest_status_per_device(db: Path) -> None:
    first = environment()
    write_run(db, first, [make_row("a", status="fail", error_class="OOM"), make_row("b", hardware="cuda")])
    later = dataclasses.replace(
        environment(), started_at=first.started_at.replace(year=first.started_at.year + 1)
    )
    write_run(db, later, [make_row("a2", status="pass"), make_row("a3", status="skip")])
    con = duckdb.connect(str(db), read_only=True)
    matrix = con.execute(
        "SELECT hardware, status, run_id FROM compatibility_matrix ORDER BY hardware"
    ).fetchall()
    con.close()
    assert matrix == [("cpu", "pass", 2), ("cuda", "pass", 1)]


def test_onnx_macros_and_registry(db: Path) -> None:
    write_run(
        db,
        environment(),
        [
            make_row(
                "hub",
                model="org/with-hub-onnx",
                mode="onnxruntime",
                measurement=Measurement(latency_p50_ms=1.0, onnx_source="huggingface"),
            ),
        ],
    )
    record_conversion(
        db,
        OnnxConversion(
            model_id="org/converted",
            onnx_path="model.onnx",
            conversion_success=True,
            opset_version=17,
            file_size_bytes=3_000_000_000,
            conversion_config={"dynamic": True},
        ),
    )
    record_conversion(
        db,
        OnnxConversion(
            model_id="org/broken",
            onnx_path="model.onnx",
            conversion_success=False,
            error_message="unsupported op, token hf_abcdefghijklmnop",
        ),
    )
    assert record_onnx_use(db, "org/converted", "model.onnx")
    assert not record_onnx_use(db, "org/unknown", "model.onnx")
    con = duckdb.connect(str(db), read_only=True)
    answers = con.execute(
        "SELECT m, has_converted_onnx(m), get_onnx_status(m) FROM (VALUES ('org/converted'), ('org/broken'), "
        "('org/with-hub-onnx'), ('org/never')) v(m) ORDER BY m"
    ).fetchall()
    registry = con.execute(
        "SELECT model_id, onnx_status, conversion_success, use_count, file_size_bytes "
        "FROM model_onnx_registry ORDER BY model_id"
    ).fetchall()
    con.close()
    assert answers == [
        ("org/broken", False, "conversion_failed"),
        ("org/converted", True, "converted"),
        ("org/never", False, "unknown"),
        ("org/with-hub-onnx", False, "available_on_hub"),
    ]
    # One row per model: the Hub's file, the conversion (used once since), the failed attempt.
    assert registry == [
        ("org/broken", "conversion_failed", False, 0, None),
        ("org/converted", "available_converted", True, 1, 3_000_000_000),
        ("org/with-hub-onnx", "available_on_hub", None, None, None),
    ]
    assert (
        count(db, "SELECT error_message FROM onnx_conversions WHERE model_id = 'org/broken'")
        == "unsupported op, token ***"
    )


def test_a_locked_database_spills_and_ingest_recovers_every_row(
    db: Path, lock_holder: subprocess.Popen[str]
) -> None:
    rows = [make_row(f"case-{i}", measurement=Measurement(latency_p50_ms=float(i + 1))) for i in range(5)]
    with pytest.warns(UserWarning, match=r"spill-.*\.parquet"):
        stored = store_run(db, environment(), rows, lock_timeout_s=0.2)
    assert stored.run_id is None and stored.spill_path is not None
    assert stored.spill_path.parent == db.parent and "locked" in (stored.reason or "")
    assert pending_spills(db) == [stored.spill_path]
    release(lock_holder)

    backup = db.parent / "copy.parquet"
    shutil.copy(stored.spill_path, backup)
    [ingested] = ingest_spill(db, [stored.spill_path])
    assert ingested.row_count == 5 and not stored.spill_path.exists()
    assert count(db, "SELECT count(*) FROM hardware_compatibility") == 5
    assert count(db, "SELECT count(*) FROM performance_results") == 5
    # The same rows again (a copy of the file) are recognised by their run and not stored twice.
    ingest_spill(db, [backup])
    assert count(db, "SELECT count(*) FROM test_runs") == 1


def test_an_unreadable_database_spills_too(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a DuckDB file" * 100)
    with pytest.warns(UserWarning, match="cannot open the results database"):
        stored = store_run(db, environment(), [make_row("a")], lock_timeout_s=5)
    assert stored.spill_path is not None and stored.run_id is None
    db.unlink()
    assert [item.row_count for item in ingest_spill(db, [stored.spill_path])] == [1]


def test_a_write_waits_for_a_lock_that_is_released(db: Path, lock_holder: subprocess.Popen[str]) -> None:
    threading.Timer(0.2, release, [lock_holder]).start()
    stored = store_run(db, environment(), [make_row("a")], lock_timeout_s=60)
    assert stored.run_id == 1 and stored.spill_path is None


def test_a_conversion_spills_when_locked_and_is_ingested(
    db: Path, lock_holder: subprocess.Popen[str]
) -> None:
    with pytest.warns(UserWarning, match="ONNX conversion of org/m not stored"):
        spill = record_conversion(db, OnnxConversion("org/m", "model.onnx", True), lock_timeout_s=0.1)
    assert spill is not None
    release(lock_holder)
    ingest_spill(db, [spill])
    assert count(db, "SELECT get_onnx_status('org/m')") == "converted"


def test_ingest_names_a_bad_file(db: Path, tmp_path: Path) -> None:
    bad = tmp_path / "spill-bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(ResultsError, match=r"spill-bad\.parquet"):
        ingest_spill(db, [bad])


def test_merge_remaps_run_ids_keeps_hosts_and_is_idempotent(tmp_path: Path) -> None:
    a, b, into = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "all.duckdb"
    write_run(a, environment("node-a"), [make_row("x", measurement=Measurement(latency_p50_ms=2.0))])
    write_run(a, environment("node-a"), [make_row("y")])
    write_run(b, environment("node-b"), [make_row("x", status="fail", hardware="cuda")])
    record_conversion(b, OnnxConversion("org/bert-tiny", "model.onnx", True))

    merged = merge_databases([a, b, a], into)  # a file named twice adds its runs once
    assert [(m.runs_added, m.runs_already_present) for m in merged] == [(2, 0), (1, 0), (0, 2)]
    again = merge_databases([a, b], into)
    assert [m.runs_added for m in again] == [0, 0]
    con = duckdb.connect(str(into), read_only=True)
    runs = con.execute("SELECT run_id, host FROM test_runs ORDER BY run_id").fetchall()
    cases = con.execute(
        "SELECT t.host, h.case_id, h.hardware FROM hardware_compatibility h "
        "JOIN test_runs t USING (run_id) ORDER BY h.run_id"
    ).fetchall()
    assert con.execute("SELECT count(*) FROM performance_results").fetchone() == (1,)
    assert con.execute("SELECT has_converted_onnx('org/bert-tiny')").fetchone() == (True,)
    con.close()
    assert runs == [(1, "node-a"), (2, "node-a"), (3, "node-b")]
    assert cases == [("node-a", "x", "cpu"), ("node-a", "y", "cpu"), ("node-b", "x", "cuda")]


def test_paths_with_quotes_are_written_and_merged(tmp_path: Path) -> None:
    """The writer and the merge attach files by path: any character a folder's name may hold."""
    folder = tmp_path / "it's a 'team' folder"
    folder.mkdir()
    source, into = folder / "node's.duckdb", folder / "all'.duckdb"
    write_run(source, environment("node-a"), [make_row("x")])
    [merged] = merge_databases([source], into)
    assert merged.runs_added == 1
    assert count(into, "SELECT count(*) FROM hardware_compatibility") == 1


def test_merge_refuses_a_missing_source_and_itself(tmp_path: Path) -> None:
    into = tmp_path / "all.duckdb"
    with pytest.raises(ResultsError, match=r"missing\.duckdb: no results database"):
        merge_databases([tmp_path / "missing.duckdb"], into)
    write_run(into, environment(), [make_row("a")])
    with pytest.raises(ResultsError, match="into itself"):
        merge_databases([into], into)


def test_run_environment_redacts_and_finds_the_git_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    env = RunEnvironment.capture(
        ["pytest", "--token", "abc", "--token=def", "-k", "bert"], HARDWARE, cwd=repo
    )
    assert env.git_commit == head
    assert env.command_line == "pytest --token '***' '--token=***' -k bert"
    assert RunEnvironment.capture(["pytest"], None, cwd=tmp_path).git_commit is None
    assert RunEnvironment.from_dict(env.to_dict()) == env


def run_cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    modules = tuple(dict.fromkeys((*cli.COMMAND_MODULES, "report_cmd", "db_cmd")))
    monkeypatch.setattr(cli, "COMMAND_MODULES", modules)
    return cli.main(list(argv))


def test_db_cli_merge_ingest_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, into = tmp_path / "a.duckdb", tmp_path / "all.duckdb"
    write_run(a, environment("node-a"), [make_row("x")])
    assert run_cli(monkeypatch, "db", "merge", str(a), "--into", str(into)) == 0
    assert "1 runs added" in capsys.readouterr().out
    assert run_cli(monkeypatch, "db", "info", "--db", str(into)) == 0
    out = capsys.readouterr().out
    assert f"schema version {SCHEMA_VERSION}" in out and "test_runs: 1 rows" in out
    assert run_cli(monkeypatch, "db", "ingest", "--db", str(into), str(tmp_path / "nope.parquet")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.parquet" in err[0]
