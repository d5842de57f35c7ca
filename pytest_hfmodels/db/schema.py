"""The results database's schema as numbered migrations, applied in one transaction on open.

Version 1 is the first layout: models, hardware, runs, per-case compatibility and performance.
Version 2 adds ONNX tracking (conversion registry, ONNX columns on performance rows) and the
views and macros that answer "what runs where" and "is this model converted". Version 3 adds the
CPU threads each runtime used and the audio length of audio cases. Version 4 says whether a
case's model came loaded from an earlier case (its load_time_s is then that load's). Version 5
marks runs stored from the journal of a killed session. Version 6 says whether a measured
model's weights were pretrained or seeded random. Version 7 names the process peak for what it is
and adds the memory that belongs to the model, the generate scenario's figures (time to first
token, per-token latency, the digest of the generated ids) and a sample of each case's output.
Version 8 keeps the original tools' ONNX tracking contract: onnx_conversions with their columns,
one row per conversion attempt (failures included); the ONNX files found on the Hub; one
model_onnx_registry row per model with its onnx_status; the performance rows' conversion
timestamp, and whether a run reused the cache as a column of its own.
Version 9 rebuilds hardware_compatibility and performance_results without their PRIMARY KEY
(run_id, case_id): its index on a text key was a third of the cost of storing a run and half of
the file. The pair stays unique because every writer checks it before inserting (`store.insert_run`
on the Arrow table, `merge` on the source database), and each run gets a fresh run_id.
Timestamps are stored as UTC without a zone: TIMESTAMPTZ would need pytz on every reader.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pytest_hfmodels.errors import ResultsError

if TYPE_CHECKING:
    import duckdb

SCHEMA_V1: tuple[str, ...] = (
    "CREATE SEQUENCE test_runs_id_seq START 1",
    """CREATE TABLE models (
        model_id VARCHAR PRIMARY KEY,  -- Hub repo id, or the local path a model was loaded from
        model_key VARCHAR,             -- registry key, as in test ids
        family VARCHAR,
        task VARCHAR,
        source VARCHAR,
        model_type VARCHAR,            -- config.json model_type
        architecture VARCHAR,
        parameters BIGINT
    )""",
    """CREATE TABLE hardware_platforms (
        hardware_key VARCHAR PRIMARY KEY,  -- label '|' device name: one row per distinct device
        label VARCHAR NOT NULL,            -- cpu, cuda, ov-gpu... as in test ids
        hardware_type VARCHAR,
        device_name VARCHAR,
        memory_mb DOUBLE,
        driver_version VARCHAR,
        library_versions JSON
    )""",
    """CREATE TABLE test_runs (
        run_id BIGINT PRIMARY KEY DEFAULT nextval('test_runs_id_seq'),
        run_uid VARCHAR NOT NULL UNIQUE,  -- stable across merges and re-ingests
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        command_line VARCHAR,
        git_commit VARCHAR,
        host VARCHAR,
        python_version VARCHAR,
        platform VARCHAR,
        package_versions JSON,
        hardware JSON,
        exit_status INTEGER,              -- pytest's exit status; NULL when not known
        success BOOLEAN NOT NULL          -- no case of the run failed
    )""",
    """CREATE TABLE performance_results (
        run_id BIGINT NOT NULL,
        case_id VARCHAR NOT NULL,
        model_id VARCHAR NOT NULL,
        hardware_key VARCHAR NOT NULL,
        hardware VARCHAR NOT NULL,
        mode VARCHAR NOT NULL,
        batch_size INTEGER,
        sequence_length INTEGER,
        precision VARCHAR,
        latency_mean_ms DOUBLE,
        latency_p50_ms DOUBLE,
        latency_p90_ms DOUBLE,
        latency_p95_ms DOUBLE,
        latency_p99_ms DOUBLE,
        latency_stdev_ms DOUBLE,
        throughput_per_s DOUBLE,
        peak_memory_mb DOUBLE,
        load_time_s DOUBLE,
        first_call_ms DOUBLE,
        iterations INTEGER,
        warmup INTEGER,
        timer VARCHAR,
        contended BOOLEAN,
        PRIMARY KEY (run_id, case_id)
    )""",
    """CREATE TABLE hardware_compatibility (
        run_id BIGINT NOT NULL,
        case_id VARCHAR NOT NULL,
        nodeid VARCHAR,
        model_id VARCHAR NOT NULL,
        model_key VARCHAR,
        hardware_key VARCHAR NOT NULL,
        hardware VARCHAR NOT NULL,
        mode VARCHAR NOT NULL,
        batch_size INTEGER,
        status VARCHAR NOT NULL CHECK (status IN ('pass', 'fail', 'skip')),
        error_class VARCHAR,
        error_message VARCHAR,
        suggested_fix VARCHAR,
        duration_s DOUBLE,
        worker VARCHAR,
        PRIMARY KEY (run_id, case_id)
    )""",
)

# Per run, one verdict per model x mode x device: a single failing case fails the cell.
_RUN_COMPATIBILITY = """CREATE VIEW run_compatibility AS
    SELECT h.run_id, r.started_at, r.host, h.model_id, any_value(h.model_key) AS model_key,
           h.mode, h.hardware, h.hardware_key, any_value(p.device_name) AS device_name,
           CASE WHEN count(*) FILTER (WHERE h.status = 'fail') > 0 THEN 'fail'
                WHEN count(*) FILTER (WHERE h.status = 'pass') > 0 THEN 'pass'
                ELSE 'skip' END AS status,
           count(*) FILTER (WHERE h.status = 'pass') AS passed,
           count(*) FILTER (WHERE h.status = 'fail') AS failed,
           count(*) FILTER (WHERE h.status = 'skip') AS skipped,
           -- the first failure explains the cell; a skip reason only when nothing failed
           arg_min(h.error_class, (CASE h.status WHEN 'fail' THEN '0' ELSE '1' END) || h.case_id)
               FILTER (WHERE h.status <> 'pass') AS error_class,
           arg_min(h.error_message, (CASE h.status WHEN 'fail' THEN '0' ELSE '1' END) || h.case_id)
               FILTER (WHERE h.status <> 'pass') AS error_message,
           arg_min(h.suggested_fix, (CASE h.status WHEN 'fail' THEN '0' ELSE '1' END) || h.case_id)
               FILTER (WHERE h.status <> 'pass') AS suggested_fix
    FROM hardware_compatibility h
    JOIN test_runs r USING (run_id)
    LEFT JOIN hardware_platforms p USING (hardware_key)
    GROUP BY h.run_id, r.started_at, r.host, h.model_id, h.mode, h.hardware, h.hardware_key"""

SCHEMA_V2: tuple[str, ...] = (
    # onnx_source: huggingface | pytorch_conversion | cache
    "ALTER TABLE performance_results ADD COLUMN onnx_source VARCHAR",
    "ALTER TABLE performance_results ADD COLUMN onnx_conversion_status VARCHAR",
    "ALTER TABLE performance_results ADD COLUMN onnx_conversion_time DOUBLE",  # seconds
    "ALTER TABLE performance_results ADD COLUMN onnx_local_path VARCHAR",
    """CREATE TABLE onnx_conversions (
        model_id VARCHAR NOT NULL,
        model_type VARCHAR,
        onnx_path VARCHAR NOT NULL,      -- file name inside the repo the export stands for
        local_path VARCHAR,              -- where the exported file lies on the converting machine
        conversion_time_s DOUBLE,
        config JSON,                     -- export settings (dynamic axes, inputs...)
        success BOOLEAN NOT NULL,
        error VARCHAR,
        opset INTEGER,
        exporter VARCHAR,
        file_size_bytes BIGINT,
        sha256 VARCHAR,
        max_abs_diff DOUBLE,             -- largest |onnx - pytorch| seen in validation
        converted_at TIMESTAMP NOT NULL,
        last_used_at TIMESTAMP,
        use_count BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (model_id, onnx_path)
    )""",
    _RUN_COMPATIBILITY,
    """CREATE VIEW compatibility_matrix AS
        SELECT * EXCLUDE (recency) FROM (
            SELECT *, row_number() OVER (
                PARTITION BY model_id, mode, hardware_key ORDER BY started_at DESC, run_id DESC) AS recency
            FROM run_compatibility)
        WHERE recency = 1""",
    """CREATE VIEW model_onnx_registry AS
        SELECT c.model_id, m.model_key, m.family, coalesce(c.model_type, m.model_type) AS model_type,
               c.onnx_path, c.local_path, c.success, c.error, c.opset, c.exporter, c.file_size_bytes,
               c.sha256, c.max_abs_diff, c.conversion_time_s, c.config, c.converted_at, c.last_used_at,
               c.use_count
        FROM onnx_conversions c LEFT JOIN models m USING (model_id)""",
    # Macro parameters must not share a column's name, or DuckDB reports a conflict.
    """CREATE MACRO has_converted_onnx(for_model) AS
        EXISTS (SELECT 1 FROM onnx_conversions c WHERE c.model_id = for_model AND c.success)""",
    """CREATE MACRO get_onnx_status(for_model) AS
        CASE WHEN EXISTS (SELECT 1 FROM onnx_conversions c WHERE c.model_id = for_model AND c.success)
                 THEN 'converted'
             WHEN EXISTS (SELECT 1 FROM performance_results p
                          WHERE p.model_id = for_model AND p.onnx_source = 'huggingface')
                 THEN 'on_hub'
             WHEN EXISTS (SELECT 1 FROM onnx_conversions c WHERE c.model_id = for_model)
                 THEN 'failed'
             ELSE 'none' END""",
)

SCHEMA_V3: tuple[str, ...] = (
    # Under xdist each worker's runtime gets a share of the CPUs: timings mean little without it.
    "ALTER TABLE performance_results ADD COLUMN threads INTEGER",
    # Two audio cases of one batch differ only in their length: without it they are one key.
    "ALTER TABLE performance_results ADD COLUMN audio_seconds DOUBLE",
)

SCHEMA_V4: tuple[str, ...] = (
    # Every case stores the load time of the model it ran on; most reuse one loaded before.
    "ALTER TABLE performance_results ADD COLUMN model_reused BOOLEAN",
)

SCHEMA_V5: tuple[str, ...] = (
    # A run stored from the journal of a killed session: its cases after the kill never ran.
    "ALTER TABLE test_runs ADD COLUMN interrupted BOOLEAN DEFAULT false",
)

SCHEMA_V6: tuple[str, ...] = (
    # A random-weight model of a real model's size times like its pretrained twin and shares its
    # configuration: without this column the two rows read the same.
    "ALTER TABLE performance_results ADD COLUMN weights VARCHAR",  # random | pretrained
    # What a row stored before this version had: only the tiny source's weights were random then.
    # Also fills rows a journal or spill file of an older version brings.
    """CREATE MACRO weights_of_source(for_source) AS
        CASE WHEN for_source = 'tiny' THEN 'random' WHEN for_source IS NOT NULL THEN 'pretrained' END""",
    """UPDATE performance_results p SET weights = weights_of_source(
           (SELECT m.source FROM models m WHERE m.model_id = p.model_id))""",
)

SCHEMA_V7: tuple[str, ...] = (
    # The process's RSS holds torch, every runtime and earlier models: 984 MB for a 0.16 MB model.
    "ALTER TABLE performance_results RENAME COLUMN peak_memory_mb TO process_peak_rss_mb",
    "ALTER TABLE performance_results ADD COLUMN weights_mb DOUBLE",
    "ALTER TABLE performance_results ADD COLUMN model_load_mb DOUBLE",
    "ALTER TABLE performance_results ADD COLUMN inference_peak_mb DOUBLE",
    "ALTER TABLE performance_results ADD COLUMN device_peak_mb DOUBLE",
    # Every row before this version timed one forward call.
    "ALTER TABLE performance_results ADD COLUMN scenario VARCHAR",
    "UPDATE performance_results SET scenario = 'forward'",
    "ALTER TABLE hardware_compatibility ADD COLUMN scenario VARCHAR",
    "UPDATE hardware_compatibility SET scenario = 'forward'",
    "ALTER TABLE performance_results ADD COLUMN new_tokens INTEGER",
    "ALTER TABLE performance_results ADD COLUMN ttft_ms DOUBLE",
    "ALTER TABLE performance_results ADD COLUMN tpot_ms DOUBLE",
    "ALTER TABLE performance_results ADD COLUMN tpot_p90_ms DOUBLE",
    "ALTER TABLE performance_results ADD COLUMN decode_tokens_per_s DOUBLE",
    "ALTER TABLE performance_results ADD COLUMN prefill_tokens_per_s DOUBLE",
    "ALTER TABLE performance_results ADD COLUMN output_digest VARCHAR",
    "ALTER TABLE performance_results ADD COLUMN output_sample VARCHAR",
)

# Per model: the Hub's ONNX first (the modes use it before converting), else its latest
# conversion attempt, a successful one before failures.
_MODEL_ONNX_REGISTRY = """CREATE VIEW model_onnx_registry AS
    WITH attempts AS (
        SELECT *, row_number() OVER (
            PARTITION BY model_id ORDER BY conversion_success DESC, conversion_time DESC, id DESC) AS rank
        FROM onnx_conversions),
    hub AS (
        SELECT model_id, any_value(onnx_path) AS onnx_path, any_value(local_path) AS local_path,
               any_value(file_size_bytes) AS file_size_bytes
        FROM (SELECT model_id, onnx_path, local_path, file_size_bytes FROM onnx_hub_files WHERE found
              UNION ALL
              SELECT model_id, NULL, onnx_local_path, NULL FROM performance_results
              WHERE onnx_source = 'huggingface')
        GROUP BY model_id)
    SELECT m.model_id, m.model_name, m.model_key, m.family,
           coalesce(a.model_type, m.model_type) AS model_type,
           CASE WHEN hub.model_id IS NOT NULL THEN 'available_on_hub'
                WHEN a.conversion_success THEN 'available_converted'
                WHEN a.model_id IS NOT NULL THEN 'conversion_failed'
                ELSE 'unknown' END AS onnx_status,
           CASE WHEN hub.model_id IS NOT NULL THEN hub.local_path ELSE a.local_path END AS onnx_local_path,
           coalesce(hub.onnx_path, a.onnx_path) AS onnx_path,
           a.conversion_time, a.opset_version,
           CASE WHEN hub.model_id IS NOT NULL THEN hub.file_size_bytes ELSE a.file_size_bytes END
               AS file_size_bytes,
           a.use_count, a.conversion_success, a.error_message, a.verification_status, a.exporter, a.sha256,
           a.max_abs_diff, a.conversion_seconds
    FROM (SELECT model_id, any_value(model_name) AS model_name, any_value(model_key) AS model_key,
                 any_value(family) AS family, any_value(model_type) AS model_type
          FROM (SELECT model_id, model_name, model_key, family, model_type FROM models
                UNION ALL SELECT model_id, NULL, NULL, NULL, model_type FROM onnx_conversions
                UNION ALL SELECT model_id, NULL, NULL, NULL, NULL FROM onnx_hub_files)
          GROUP BY model_id) m
    LEFT JOIN attempts a ON a.model_id = m.model_id AND a.rank = 1
    LEFT JOIN hub ON hub.model_id = m.model_id"""

SCHEMA_V8: tuple[str, ...] = (
    "DROP VIEW model_onnx_registry",
    "DROP MACRO has_converted_onnx",
    "DROP MACRO get_onnx_status",
    # The original tools' view reads models.model_name.
    "ALTER TABLE models ADD COLUMN model_name VARCHAR",
    "UPDATE models SET model_name = coalesce(model_key, model_id)",
    "CREATE SEQUENCE onnx_conversions_id_seq START 1",
    """CREATE TABLE onnx_conversion_attempts (
        id BIGINT PRIMARY KEY DEFAULT nextval('onnx_conversions_id_seq'),
        model_id VARCHAR NOT NULL,
        model_type VARCHAR,
        onnx_path VARCHAR NOT NULL,        -- file name inside the repo the export stands for
        local_path VARCHAR,                -- where the exported file lies on the converting machine
        conversion_time TIMESTAMP NOT NULL,  -- when the attempt ended (UTC)
        conversion_config JSON,            -- export settings (spec, exporters tried, tolerances...)
        conversion_success BOOLEAN NOT NULL DEFAULT true,
        error_message VARCHAR,
        opset_version INTEGER,
        file_size_bytes BIGINT,
        verification_status VARCHAR,       -- validated (agrees with PyTorch) | failed
        last_used TIMESTAMP,
        use_count BIGINT NOT NULL DEFAULT 1,
        exporter VARCHAR,
        sha256 VARCHAR,
        max_abs_diff DOUBLE,               -- largest |onnx - pytorch| seen in validation
        conversion_seconds DOUBLE          -- wall time of the conversion
    )""",
    """INSERT INTO onnx_conversion_attempts (model_id, model_type, onnx_path, local_path, conversion_time,
           conversion_config, conversion_success, error_message, opset_version, file_size_bytes,
           verification_status, last_used, use_count, exporter, sha256, max_abs_diff, conversion_seconds)
       SELECT model_id, model_type, onnx_path, local_path, converted_at, config, success, error, opset,
              file_size_bytes, CASE WHEN success THEN 'validated' ELSE 'failed' END, last_used_at,
              use_count, exporter, sha256, max_abs_diff, conversion_time_s
       FROM onnx_conversions ORDER BY converted_at, model_id, onnx_path""",
    "DROP TABLE onnx_conversions",
    "ALTER TABLE onnx_conversion_attempts RENAME TO onnx_conversions",
    """CREATE TABLE onnx_hub_files (
        model_id VARCHAR NOT NULL,
        onnx_path VARCHAR NOT NULL,        -- the file in the repo
        found BOOLEAN NOT NULL,            -- the repo has it
        local_path VARCHAR,                -- where it was downloaded
        file_size_bytes BIGINT,
        verification_status VARCHAR,       -- validated | mismatch | fetched (not compared)
        max_abs_diff DOUBLE,
        checked_at TIMESTAMP NOT NULL,
        PRIMARY KEY (model_id, onnx_path)
    )""",
    # The rows' ONNX columns as the original tools define them: onnx_source says where the file
    # came from (huggingface | pytorch_conversion), onnx_conversion_status original | converted,
    # onnx_conversion_time when it was converted; whether this run reused the cache is its own column.
    "ALTER TABLE performance_results RENAME COLUMN onnx_conversion_time TO onnx_conversion_seconds",
    "ALTER TABLE performance_results ADD COLUMN onnx_conversion_time TIMESTAMP",
    "ALTER TABLE performance_results ADD COLUMN onnx_cache_hit BOOLEAN",
    """UPDATE performance_results SET onnx_cache_hit = (onnx_source = 'cache'),
           onnx_source = 'pytorch_conversion', onnx_conversion_status = 'converted'
       WHERE onnx_source IN ('cache', 'pytorch_conversion')""",
    _MODEL_ONNX_REGISTRY,
    # Macro parameters must not share a column's name, or DuckDB reports a conflict.
    """CREATE MACRO has_converted_onnx(for_model) AS
        EXISTS (SELECT 1 FROM onnx_conversions c WHERE c.model_id = for_model AND c.conversion_success)""",
    # The original tools' answers (converted, conversion_failed, unknown), the Hub's file first.
    """CREATE MACRO get_onnx_status(for_model) AS
        CASE WHEN EXISTS (SELECT 1 FROM onnx_hub_files h WHERE h.model_id = for_model AND h.found)
                  OR EXISTS (SELECT 1 FROM performance_results p
                             WHERE p.model_id = for_model AND p.onnx_source = 'huggingface')
                 THEN 'available_on_hub'
             WHEN EXISTS (SELECT 1 FROM onnx_conversions c
                          WHERE c.model_id = for_model AND c.conversion_success)
                 THEN 'converted'
             WHEN EXISTS (SELECT 1 FROM onnx_conversions c WHERE c.model_id = for_model)
                 THEN 'conversion_failed'
             ELSE 'unknown' END""",
)

# Version 8's layout of the two per-case tables, column for column and in the same order, with
# every NOT NULL and CHECK kept: only the PRIMARY KEY goes.
_HARDWARE_COMPATIBILITY_V9 = """CREATE TABLE hardware_compatibility_v9 (
    run_id BIGINT NOT NULL,
    case_id VARCHAR NOT NULL,
    nodeid VARCHAR,
    model_id VARCHAR NOT NULL,
    model_key VARCHAR,
    hardware_key VARCHAR NOT NULL,
    hardware VARCHAR NOT NULL,
    mode VARCHAR NOT NULL,
    batch_size INTEGER,
    status VARCHAR NOT NULL CHECK (status IN ('pass', 'fail', 'skip')),
    error_class VARCHAR,
    error_message VARCHAR,
    suggested_fix VARCHAR,
    duration_s DOUBLE,
    worker VARCHAR,
    scenario VARCHAR
)"""

_PERFORMANCE_RESULTS_V9 = """CREATE TABLE performance_results_v9 (
    run_id BIGINT NOT NULL,
    case_id VARCHAR NOT NULL,
    model_id VARCHAR NOT NULL,
    hardware_key VARCHAR NOT NULL,
    hardware VARCHAR NOT NULL,
    mode VARCHAR NOT NULL,
    batch_size INTEGER,
    sequence_length INTEGER,
    precision VARCHAR,
    latency_mean_ms DOUBLE,
    latency_p50_ms DOUBLE,
    latency_p90_ms DOUBLE,
    latency_p95_ms DOUBLE,
    latency_p99_ms DOUBLE,
    latency_stdev_ms DOUBLE,
    throughput_per_s DOUBLE,
    process_peak_rss_mb DOUBLE,
    load_time_s DOUBLE,
    first_call_ms DOUBLE,
    iterations INTEGER,
    warmup INTEGER,
    timer VARCHAR,
    contended BOOLEAN,
    onnx_source VARCHAR,
    onnx_conversion_status VARCHAR,
    onnx_conversion_seconds DOUBLE,
    onnx_local_path VARCHAR,
    threads INTEGER,
    audio_seconds DOUBLE,
    model_reused BOOLEAN,
    weights VARCHAR,
    weights_mb DOUBLE,
    model_load_mb DOUBLE,
    inference_peak_mb DOUBLE,
    device_peak_mb DOUBLE,
    scenario VARCHAR,
    new_tokens INTEGER,
    ttft_ms DOUBLE,
    tpot_ms DOUBLE,
    tpot_p90_ms DOUBLE,
    decode_tokens_per_s DOUBLE,
    prefill_tokens_per_s DOUBLE,
    output_digest VARCHAR,
    output_sample VARCHAR,
    onnx_conversion_time TIMESTAMP,
    onnx_cache_hit BOOLEAN
)"""

SCHEMA_V9: tuple[str, ...] = (
    # DuckDB cannot drop a constraint: each table is copied into its new layout and renamed.
    # Views and macros bind their tables by name when they run, so they follow the rename.
    _HARDWARE_COMPATIBILITY_V9,
    "INSERT INTO hardware_compatibility_v9 BY NAME SELECT * FROM hardware_compatibility",
    "DROP TABLE hardware_compatibility",
    "ALTER TABLE hardware_compatibility_v9 RENAME TO hardware_compatibility",
    _PERFORMANCE_RESULTS_V9,
    "INSERT INTO performance_results_v9 BY NAME SELECT * FROM performance_results",
    "DROP TABLE performance_results",
    "ALTER TABLE performance_results_v9 RENAME TO performance_results",
)

#: statements that bring a database from version N-1 to N, by N
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: SCHEMA_V1,
    2: SCHEMA_V2,
    3: SCHEMA_V3,
    4: SCHEMA_V4,
    5: SCHEMA_V5,
    6: SCHEMA_V6,
    7: SCHEMA_V7,
    8: SCHEMA_V8,
    9: SCHEMA_V9,
}
SCHEMA_VERSION = max(MIGRATIONS)

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMP NOT NULL
)"""


def stored_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version of the open database; 0 for an empty one."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
        ["schema_version"],
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction; a failed COMMIT may already have ended it."""
    import duckdb

    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


def migrate(con: duckdb.DuckDBPyConnection, where: str) -> int:
    """Bring the database to SCHEMA_VERSION in one transaction; returns the version found before."""
    import duckdb

    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(_VERSION_TABLE)
        found = stored_version(con)
        if found > SCHEMA_VERSION:
            raise ResultsError(
                f"{where}: schema version {found} is newer than this pytest-hfmodels understands "
                f"({SCHEMA_VERSION}); upgrade pytest-hfmodels"
            )
        applied_at = datetime.now(timezone.utc).replace(tzinfo=None)
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, applied_at])
        con.execute("COMMIT")
    except duckdb.Error as exc:
        rollback(con)
        raise ResultsError(f"{where}: could not migrate the results database: {exc}") from exc
    except BaseException:
        rollback(con)
        raise
    return found
