"""The DuckDB results database: opening (with migration) and storing a run, or spilling it.

Only the controller writes a run, once, at session end, in one transaction. DuckDB lets one
process write a file at a time, so opening retries for a bounded time; when the write still
cannot happen, `store_run` saves the rows to a Parquet spill file beside the database and
`db_ingest.ingest_spill` loads it later. A run's `run_uid` makes writing it idempotent, so ingesting a
spill file twice, or merging a database twice, stores each run once.

A writer attaches the file with row groups of ROW_GROUP_ROWS rows and flushes each one as soon as
it is full, so DuckDB compresses and writes a run's rows while inserting them (0.05 s of CPU for
100k rows). With DuckDB's defaults (122,880-row groups, five buffered before a flush) such a run
stays in memory until COMMIT, which then checkpoints the database: 0.2 s of CPU. The writer also
lets DuckDB insert without keeping the rows' order: each thread then fills and writes row groups
of its own, where an ordered insert hands them to one writer (nothing reads a run in stored order).

duckdb and pyarrow are imported inside functions: the recorder imports this module with the plugin.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hfmodels.cases.defaults import DEFAULT_LOCK_TIMEOUT_S
from pytest_hfmodels.db.environment import RunEnvironment
from pytest_hfmodels.db.schema import SCHEMA_VERSION, migrate, rollback, stored_version
from pytest_hfmodels.db.spill import RunRows, rows_table, write_spill
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.results import ResultRow

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


# Columns of a performance row that only a measurement fills; a row with none of them measured
# nothing and is stored in hardware_compatibility only.
_MEASURED_COLUMNS = (
    "latency_mean_ms",
    "latency_p50_ms",
    "throughput_per_s",
    "process_peak_rss_mb",
    "ttft_ms",
    "load_time_s",
    "first_call_ms",
    "onnx_conversion_time_s",
)


#: rows per row group written by this package: a multiple of DuckDB's 2,048-row vector, small
#: enough that a run of a few thousand cases fills whole groups while it is inserted, and that
#: each of an unordered insert's threads leaves little for the single-threaded commit to write
#: (100k rows on 2 threads: 0.28 s at 16,384 rows a group, 0.34 s at 32,768 ordered)
ROW_GROUP_ROWS = 16_384
#: the database's name inside a writer's connection (the file is attached under it)
_ATTACHED_AS = "results"
#: how a writer's connection inserts (see the module's docstring): each row group written as soon
#: as it is full, and the rows' order not kept
_WRITER_SETTINGS = ("SET write_buffer_row_group_count = 1", "SET preserve_insertion_order = false")


@dataclass(frozen=True)
class StoredRun:
    """Where a run's rows went: into the database (run_id) or into a spill file (spill_path)."""

    row_count: int
    run_id: int | None = None
    spill_path: Path | None = None
    reason: str | None = None  #: why the database could not be written, when spilled


def hardware_key(label: str, device_name: str | None) -> str:
    """Natural key of a device: its label and name (one label can mean different devices)."""
    return f"{label}|{device_name or ''}"


def _is_lock_error(exc: Exception) -> bool:
    # DuckDB reports another process's file lock as an IOException with this wording.
    message = str(exc).lower()
    return "could not set lock" in message or "conflicting lock" in message


def open_database(
    path: Path,
    *,
    read_only: bool = False,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> duckdb.DuckDBPyConnection:
    """Open (and, when writable, create and migrate) the database, waiting out other writers."""
    import duckdb

    if read_only and not path.is_file():
        raise ResultsError(f"{path}: no results database here")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout_s
    pause = 0.02
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True) if read_only else connect_writer(path)
            break
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise ResultsError(f"{path}: cannot open the results database: {exc}") from exc
            if time.monotonic() + pause > deadline:
                raise ResultsError(
                    f"{path}: locked by another process for {lock_timeout_s:g}s: {exc}"
                ) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
    if read_only:
        found = stored_version(con)
        if found != SCHEMA_VERSION:
            con.close()
            if found > SCHEMA_VERSION:
                raise ResultsError(f"{path}: schema version {found} is newer than this pytest-hfmodels")
            # Readers of an older file upgrade it once, then read.
            open_database(path, lock_timeout_s=lock_timeout_s).close()
            return open_database(path, read_only=True, lock_timeout_s=lock_timeout_s)
        return con
    try:
        migrate(con, str(path))
    except BaseException:
        con.close()
        raise
    return con


def connect_writer(path: Path) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the file at `path`, attached for bulk inserts.

    No lock wait and no migration: `open_database` adds those. Benchmarks open their baseline's
    file with it, so the baseline is written as the store writes.
    """
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"ATTACH ? AS {_ATTACHED_AS} (ROW_GROUP_SIZE {ROW_GROUP_ROWS})", [str(path)])
        con.execute(f"USE {_ATTACHED_AS}")
        for setting in _WRITER_SETTINGS:
            con.execute(setting)
    except BaseException:
        con.close()
        raise
    return con


def _devices_of(table: pa.Table) -> list[tuple[str, str | None]]:
    # Distinct pairs in Arrow's hash kernel: a run has a few devices, and a Python loop over 100k
    # rows for them cost more than DuckDB's insert of a table.
    pairs = table.select(["hardware", "device_name"]).group_by(["hardware", "device_name"]).aggregate([])
    return list(
        zip(pairs.column("hardware").to_pylist(), pairs.column("device_name").to_pylist(), strict=True)
    )


def _hardware_rows(environment: RunEnvironment, table: pa.Table) -> list[list[Any]]:
    """One row per device: described by the detected hardware where known, else by the results."""

    def first(item: Mapping[str, Any], *names: str) -> Any:
        return next((item[name] for name in names if item.get(name) is not None), None)

    devices: dict[str, list[Any]] = {}
    for label, device_name in _devices_of(table):
        devices.setdefault(hardware_key(label, device_name), [label, None, device_name, None, None, None])
    # Keys as hardware.Device.to_dict writes them (label, kind, name, memory_mb, driver, versions).
    for item in environment.hardware:
        label = first(item, "label", "kind")
        if label is None:
            continue
        device_name = first(item, "name", "device_name")
        versions = first(item, "versions", "library_versions")
        devices[hardware_key(str(label), device_name)] = [
            str(label),
            first(item, "kind", "type"),
            device_name,
            first(item, "memory_mb"),
            first(item, "driver", "driver_version"),
            json.dumps(versions) if versions is not None else None,
        ]
    return [[key, *values] for key, values in sorted(devices.items())]


def insert_run(
    con: duckdb.DuckDBPyConnection,
    environment: RunEnvironment,
    table: pa.Table,
    exit_status: int | None,
    *,
    interrupted: bool = False,
) -> int:
    """Store one run (environment + flattened rows) in one transaction; returns its run id.

    A run already stored (same run_uid) is not stored again: its id is returned. `interrupted`:
    the rows come from the journal of a session that was killed.
    """
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc

    # hardware_key(label, device_name), computed column-wise
    device_names = pc.fill_null(table.column("device_name"), "")
    keys = pc.binary_join_element_wise(table.column("hardware"), device_names, "|")
    # DuckDB's threads each scan whole Arrow batches: a table of one 100k-row batch (a list of rows,
    # a spill file) went in on one thread, 0.37 s against 0.27 s sliced (no copy) to row groups.
    incoming = pa.Table.from_batches(
        table.append_column("hardware_key", keys).to_batches(max_chunksize=ROW_GROUP_ROWS)
    )
    success = not pc.any(pc.equal(table.column("status"), "fail")).as_py()
    con.register("incoming_rows", incoming)
    con.execute("BEGIN TRANSACTION")
    try:
        existing = con.execute(
            "SELECT run_id FROM test_runs WHERE run_uid = ?", [environment.run_uid]
        ).fetchone()
        if existing:
            rollback(con)
            return int(existing[0])
        _check_unique_cases(table)
        run_id = _insert_test_run(con, environment, exit_status, success, interrupted)
        _upsert_models(con)
        _upsert_hardware(con, _hardware_rows(environment, table))
        _insert_compatibility(con, run_id)
        _insert_performance(con, run_id)
        con.execute("COMMIT")
    except duckdb.Error as exc:
        rollback(con)
        raise ResultsError(f"could not store the run: {exc}") from exc
    except BaseException:
        rollback(con)
        raise
    finally:
        con.unregister("incoming_rows")
    return run_id


def _check_unique_cases(table: pa.Table) -> None:
    """Refuse a table with two rows of one case: (run_id, case_id) is unique, and no index says so.

    The run's id is new, so distinct case ids in the table are distinct keys in the database. Arrow's
    hash kernel checks 100k ids in a few milliseconds; the PRIMARY KEY's index it replaces (schema
    version 9) cost a third of storing the run.
    """
    import pyarrow.compute as pc

    case_ids = table.column("case_id")
    if len(pc.unique(case_ids)) == table.num_rows:  # half the time of count_distinct's aggregation
        return
    counts = pc.value_counts(case_ids)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    raise ResultsError(
        f"{len(repeated)} case ids appear more than once in the run's rows (one is {repeated[0].as_py()!r}); "
        "a run stores one row per case"
    )


# Each helper below writes one table from the registered `incoming_rows`, inside insert_run's transaction.


def _insert_test_run(
    con: duckdb.DuckDBPyConnection,
    environment: RunEnvironment,
    exit_status: int | None,
    success: bool,
    interrupted: bool,
) -> int:
    inserted = con.execute(
        """INSERT INTO test_runs (run_uid, started_at, finished_at, command_line, git_commit, host,
               python_version, platform, package_versions, hardware, exit_status, success, interrupted)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING run_id""",
        [
            environment.run_uid,
            _utc_naive(environment.started_at),
            _utc_naive(environment.finished_at),
            environment.command_line,
            environment.git_commit,
            environment.host,
            environment.python_version,
            environment.platform,
            json.dumps(dict(environment.package_versions)),
            json.dumps([dict(item) for item in environment.hardware]),
            exit_status,
            success,
            interrupted,
        ],
    ).fetchone()
    assert inserted is not None  # RETURNING always yields the inserted row
    return int(inserted[0])


def _upsert_models(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """INSERT INTO models BY NAME
           SELECT model_id, any_value(model_key) AS model_key, any_value(family) AS family,
                  any_value(task) AS task, any_value(source) AS source, any_value(model_type) AS model_type,
                  any_value(architecture) AS architecture, any_value(parameters) AS parameters,
                  any_value(model_key) AS model_name  -- the original tools' name for it
           FROM incoming_rows GROUP BY model_id
           ON CONFLICT (model_id) DO UPDATE SET
               model_key = coalesce(EXCLUDED.model_key, models.model_key),
               model_name = coalesce(EXCLUDED.model_name, models.model_name),
               family = coalesce(EXCLUDED.family, models.family),
               task = coalesce(EXCLUDED.task, models.task),
               source = coalesce(EXCLUDED.source, models.source),
               model_type = coalesce(EXCLUDED.model_type, models.model_type),
               architecture = coalesce(EXCLUDED.architecture, models.architecture),
               parameters = coalesce(EXCLUDED.parameters, models.parameters)"""
    )


def _upsert_hardware(con: duckdb.DuckDBPyConnection, hardware: list[list[Any]]) -> None:
    if not hardware:
        return
    # One statement for all devices: executemany planned it once per device, 4 ms each.
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(hardware))
    con.execute(
        f"""INSERT INTO hardware_platforms VALUES {values}
           ON CONFLICT (hardware_key) DO UPDATE SET
               hardware_type = coalesce(EXCLUDED.hardware_type, hardware_platforms.hardware_type),
               memory_mb = coalesce(EXCLUDED.memory_mb, hardware_platforms.memory_mb),
               driver_version = coalesce(EXCLUDED.driver_version, hardware_platforms.driver_version),
               library_versions = coalesce(EXCLUDED.library_versions,
                                           hardware_platforms.library_versions)""",
        [value for row in hardware for value in row],
    )


def _insert_compatibility(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    con.execute(
        """INSERT INTO hardware_compatibility
           SELECT ?, case_id, nodeid, model_id, model_key, hardware_key, hardware, mode, batch_size,
                  status, error_class, error_message, suggested_fix, duration_s, worker,
                  coalesce(scenario, 'forward') AS scenario
           FROM incoming_rows""",
        [run_id],
    )


def _insert_performance(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    measured = " OR ".join(f"{column} IS NOT NULL" for column in _MEASURED_COLUMNS)
    con.execute(
        f"""INSERT INTO performance_results BY NAME
            SELECT ? AS run_id, case_id, model_id, hardware_key, hardware, mode,
                   coalesce(weights, weights_of_source(source)) AS weights, batch_size,
                   sequence_length, audio_seconds, precision, latency_mean_ms, latency_p50_ms,
                   latency_p90_ms, latency_p95_ms, latency_p99_ms, latency_stdev_ms, throughput_per_s,
                   process_peak_rss_mb, weights_mb, model_load_mb, inference_peak_mb, device_peak_mb,
                   load_time_s, model_reused, first_call_ms, iterations, warmup, timer, contended,
                   threads, onnx_source,
                   onnx_conversion_status, onnx_conversion_time_s AS onnx_conversion_seconds,
                   make_timestamp(CAST(onnx_converted_at * 1e6 AS BIGINT)) AS onnx_conversion_time,
                   onnx_cache_hit, onnx_local_path,
                   coalesce(scenario, 'forward') AS scenario, new_tokens, ttft_ms, tpot_ms, tpot_p90_ms,
                   decode_tokens_per_s, prefill_tokens_per_s, output_digest, output_sample
            FROM incoming_rows WHERE {measured}""",
        [run_id],
    )


def _utc_naive(moment: datetime | None) -> datetime | None:
    # Stored as UTC without a zone (see schema); aware datetimes are converted first.
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def write_run(
    db_path: Path,
    environment: RunEnvironment,
    rows: Iterable[ResultRow],
    *,
    exit_status: int | None = None,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> int:
    """Store a run in one transaction and return its run id; raises ResultsError when it cannot."""
    table = rows_table(rows)
    con = open_database(db_path, lock_timeout_s=lock_timeout_s)
    try:
        return insert_run(con, environment, table, exit_status)
    finally:
        con.close()


def store_run(
    db_path: Path,
    environment: RunEnvironment,
    rows: Sequence[ResultRow] | RunRows,
    *,
    exit_status: int | None = None,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> StoredRun:
    """`write_run`, or, when the database cannot be written, a spill file beside it (with a warning).

    `rows`: a list, or the run's rows converted as they arrived (the plugin's recorder).
    """
    table = rows.table() if isinstance(rows, RunRows) else rows_table(rows)
    try:
        con = open_database(db_path, lock_timeout_s=lock_timeout_s)
        try:
            run_id = insert_run(con, environment, table, exit_status)
        finally:
            con.close()
    except ResultsError as exc:
        spill = write_spill(
            db_path.parent, table, kind="run", environment=environment, exit_status=exit_status
        )
        warnings.warn(
            f"hfmodels: {table.num_rows} results not stored ({exc}); saved to {spill}; "
            f"load them with: hfmodels db ingest --db {db_path} {spill}",
            UserWarning,
            stacklevel=2,
        )
        return StoredRun(row_count=table.num_rows, spill_path=spill, reason=str(exc))
    return StoredRun(row_count=table.num_rows, run_id=run_id)
