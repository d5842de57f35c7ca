"""The ONNX conversion registry: which model was exported where, how, and how often it was used.

Conversions happen wherever a case needs one (often an xdist worker), so `record_conversion`
opens the database only for its own short transaction, waiting out other writers; when it still
cannot write, the record goes to a spill file like a run's rows. One row per (model_id, onnx_path):
recording again replaces the export's details and keeps the usage count.

At session end the controller records the conversions the run's rows used (`record_run_conversions`):
a row of the onnxruntime or openvino modes names its file (`onnx_local_path`), and the conversion's
own record, `conversion.json`, lies beside it in the cache. Reading it here keeps result rows to
primitives while the database still learns the exporter, opset, size, hash and diffs.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hfmodels.cache.manifest import files_size, read_manifest
from pytest_hfmodels.cases.defaults import DEFAULT_LOCK_TIMEOUT_S
from pytest_hfmodels.db.schema import rollback
from pytest_hfmodels.db.spill import scrub_text_array, write_spill
from pytest_hfmodels.db.store import open_database
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.results import ResultRow

#: the file an export of the modes stands for when no repo file was named
ONNX_FILE_NAME = "model.onnx"

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_COLUMNS = (
    "model_id",
    "model_type",
    "onnx_path",
    "local_path",
    "conversion_time",
    "conversion_config",
    "conversion_success",
    "error_message",
    "opset_version",
    "file_size_bytes",
    "verification_status",
    "exporter",
    "sha256",
    "max_abs_diff",
    "conversion_seconds",
)
#: what a spill file written before schema version 8 named these columns
_OLD_NAMES = {
    "converted_at": "conversion_time",
    "config": "conversion_config",
    "success": "conversion_success",
    "error": "error_message",
    "opset": "opset_version",
    "conversion_time_s": "conversion_seconds",
}


@dataclass(frozen=True)
class OnnxConversion:
    """One attempt to export a model to ONNX, successful or not (the original tools' columns)."""

    model_id: str
    onnx_path: str  #: file name inside the repo the export stands for (e.g. model.onnx)
    conversion_success: bool
    model_type: str | None = None
    local_path: str | None = None
    conversion_seconds: float | None = None  #: wall time of the conversion
    conversion_config: Mapping[str, Any] | None = None  #: export settings, stored as JSON
    error_message: str | None = None
    opset_version: int | None = None
    exporter: str | None = None  #: legacy | dynamo
    file_size_bytes: int | None = None
    sha256: str | None = None
    max_abs_diff: float | None = None  #: largest |onnx - pytorch| in validation
    conversion_time: datetime | None = None  #: when the attempt ended; defaults to the time of recording

    @property
    def verification_status(self) -> str:
        """validated: the file was made and agreed with PyTorch; failed: no valid file came out."""
        return "validated" if self.conversion_success else "failed"


def conversions_table(conversions: list[OnnxConversion]) -> pa.Table:
    import pyarrow as pa

    schema = pa.schema(
        [
            ("model_id", pa.string()),
            ("model_type", pa.string()),
            ("onnx_path", pa.string()),
            ("local_path", pa.string()),
            ("conversion_time", pa.timestamp("us")),
            ("conversion_config", pa.string()),
            ("conversion_success", pa.bool_()),
            ("error_message", pa.string()),
            ("opset_version", pa.int64()),
            ("file_size_bytes", pa.int64()),
            ("verification_status", pa.string()),
            ("exporter", pa.string()),
            ("sha256", pa.string()),
            ("max_abs_diff", pa.float64()),
            ("conversion_seconds", pa.float64()),
        ]
    )
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    records = []
    for item in conversions:
        when = item.conversion_time or now
        if when.tzinfo is not None:
            when = when.astimezone(timezone.utc).replace(tzinfo=None)
        records.append(
            {
                **{name: getattr(item, name) for name in _COLUMNS},
                "conversion_config": (
                    json.dumps(dict(item.conversion_config)) if item.conversion_config is not None else None
                ),
                "conversion_time": when,
            }
        )
    table = pa.Table.from_pylist(records, schema=schema)
    # Errors and export settings can quote a token as easily as a run's error messages can.
    return pa.Table.from_arrays([scrub_text_array(column) for column in table.columns], schema=schema)


def upsert_conversions(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    """Store conversion attempts in one transaction: a failure is always a row of its own; a
    successful conversion already recorded (same model, file and sha256) is that row again, whose
    details are refreshed and whose use count is kept."""
    import duckdb

    table = table.rename_columns([_OLD_NAMES.get(name, name) for name in table.column_names])
    present = [name for name in _COLUMNS if name in table.column_names]
    refreshed = ", ".join(
        f"{name} = i.{name}" for name in present if name not in ("model_id", "onnx_path", "sha256")
    )
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("incoming_conversions", table)
        if refreshed:
            con.execute(
                f"""UPDATE onnx_conversions c SET {refreshed} FROM incoming_conversions i
                    WHERE i.conversion_success AND c.conversion_success AND c.model_id = i.model_id
                          AND c.onnx_path = i.onnx_path AND c.sha256 IS NOT DISTINCT FROM i.sha256"""
            )
        # A new row has been used by no one yet: its recorder counts the uses it saw.
        con.execute(
            f"""INSERT INTO onnx_conversions ({", ".join(present)}, use_count)
                SELECT {", ".join(f"i.{name}" for name in present)}, 0 FROM incoming_conversions i
                WHERE NOT (i.conversion_success AND EXISTS (
                    SELECT 1 FROM onnx_conversions c
                    WHERE c.conversion_success AND c.model_id = i.model_id AND c.onnx_path = i.onnx_path
                          AND c.sha256 IS NOT DISTINCT FROM i.sha256))"""
        )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        rollback(con)
        raise ResultsError(f"could not record the ONNX conversion: {exc}") from exc
    finally:
        con.unregister("incoming_conversions")


def record_conversion(
    db_path: Path,
    conversion: OnnxConversion,
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> Path | None:
    """Store one conversion; returns the spill file's path when the database could not be written."""
    table = conversions_table([conversion])
    try:
        con = open_database(db_path, lock_timeout_s=lock_timeout_s)
        try:
            upsert_conversions(con, table)
        finally:
            con.close()
    except ResultsError as exc:
        spill = write_spill(db_path.parent, table, kind="onnx_conversion")
        warnings.warn(
            f"hfmodels: ONNX conversion of {conversion.model_id} not stored ({exc}); saved to {spill}",
            UserWarning,
            stacklevel=2,
        )
        return spill
    return None


def record_onnx_use(
    db_path: Path,
    model_id: str,
    onnx_path: str,
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> bool:
    """Count one use of a converted file; False when no successful conversion of it is recorded."""
    con = open_database(db_path, lock_timeout_s=lock_timeout_s)
    try:
        used = con.execute(
            """UPDATE onnx_conversions SET use_count = use_count + 1, last_used = ?
               WHERE model_id = ? AND onnx_path = ? AND conversion_success RETURNING use_count""",
            [datetime.now(timezone.utc).replace(tzinfo=None), model_id, onnx_path],
        ).fetchall()
    finally:
        con.close()
    return bool(used)


def conversions_of(rows: Iterable[ResultRow]) -> tuple[list[OnnxConversion], Counter[tuple[str, str]]]:
    """Conversion attempts named by `rows` and how many rows used each converted file: one per
    file a passing row ran (described by its cache manifest), one per model whose conversion failed."""
    found: dict[str, OnnxConversion] = {}
    failed: dict[str, OnnxConversion] = {}
    uses: Counter[tuple[str, str]] = Counter()
    for row in rows:
        m = row.measurement
        # A Hub model's config run with random weights (--hf-weights random) shares the model's
        # id, but its export is not a conversion of that model.
        if row.source == "hub" and row.weights == "random":
            continue
        if m.onnx_conversion_status == "failed" and row.model_id not in failed:
            failed[row.model_id] = OnnxConversion(
                model_id=row.model_id,
                onnx_path=ONNX_FILE_NAME,
                conversion_success=False,
                model_type=row.model_type,
                error_message=row.error_message,
            )
            continue
        local = m.onnx_local_path
        if not local or row.status != "pass" or m.onnx_source != "pytorch_conversion":
            continue
        path = Path(local)
        if local not in found:
            record = read_manifest(path.parent)
            if record is None:
                continue  # the cache entry was cleaned since: nothing to describe it with
            created = record.get("created_at")
            found[local] = OnnxConversion(
                model_id=row.model_id,
                onnx_path=path.name,
                conversion_success=True,
                model_type=row.model_type,
                local_path=local,
                conversion_seconds=record.get("seconds"),
                conversion_config=record.get("config") or {"spec": record.get("spec")},
                opset_version=record.get("opset"),
                exporter=record.get("exporter"),
                file_size_bytes=files_size(record),
                sha256=record["files"].get(path.name, {}).get("sha256"),
                max_abs_diff=record.get("max_abs_diff"),
                conversion_time=(
                    datetime.fromtimestamp(float(created), timezone.utc) if created is not None else None
                ),
            )
        uses[(row.model_id, path.name)] += 1
    return [*found.values(), *failed.values()], uses


def record_run_conversions(
    db_path: Path, rows: Iterable[ResultRow], *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> int:
    """Store the run's conversion attempts and count the converted files' uses; returns how many
    attempts the rows named."""
    conversions, uses = conversions_of(rows)
    if not conversions:
        return 0
    con = open_database(db_path, lock_timeout_s=lock_timeout_s)
    try:
        upsert_conversions(con, conversions_table(conversions))
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        con.executemany(
            "UPDATE onnx_conversions SET use_count = use_count + ?, last_used = ? "
            "WHERE model_id = ? AND onnx_path = ? AND conversion_success",
            [[count, now, model_id, onnx_path] for (model_id, onnx_path), count in uses.items()],
        )
    except Exception as exc:
        raise ResultsError(f"{db_path}: could not record the run's ONNX conversions: {exc}") from exc
    finally:
        con.close()
    return len(conversions)


def record_verifications(
    db_path: Path, results: Iterable[Mapping[str, Any]], *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> int:
    """Store what `ModelFileVerifier.batch_verify_models` found: each model (models), each Hub file
    looked for (onnx_hub_files: found or not), each conversion attempt (onnx_conversions, failures
    included). Returns how many results were stored."""
    results = list(results)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    attempts: list[OnnxConversion] = []
    hub_files: list[list[Any]] = []
    for result in results:
        model_id, file_path = str(result["model_id"]), str(result["file_path"])
        source = result.get("source")
        if source == "huggingface" or result.get("checked_only"):
            local = result.get("local_path")
            size = Path(local).stat().st_size if local and Path(local).is_file() else None
            status = "fetched" if local else None
            hub_files.append([model_id, file_path, bool(result["success"]), local, size, status, now])
        elif source == "pytorch_conversion" or result.get("error_class") == "ModelConversionError":
            if result.get("found_on_hub") is False:
                hub_files.append([model_id, file_path, False, None, None, None, now])
            attempts.append(_attempt_of(result))
        elif result.get("error_class") in ("ModelFileNotFoundError", "ModelNotCachedError"):
            hub_files.append([model_id, file_path, False, None, None, None, now])
    models = [[str(r["model_id"]), str(r["model_id"]), r.get("model_type")] for r in results]
    used = [[now, a.model_id, a.onnx_path] for a in attempts if a.conversion_success]
    con = open_database(db_path, lock_timeout_s=lock_timeout_s)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            for statement, parameters in ((_UPSERT_MODEL, models), (_UPSERT_HUB_FILE, hub_files)):
                if parameters:  # executemany refuses an empty list
                    con.executemany(statement, parameters)
            con.execute("COMMIT")
        except Exception as exc:
            rollback(con)
            raise ResultsError(f"{db_path}: could not record the verifications: {exc}") from exc
        if attempts:
            upsert_conversions(con, conversions_table(attempts))
        if used:
            con.executemany(
                "UPDATE onnx_conversions SET use_count = use_count + 1, last_used = ? "
                "WHERE model_id = ? AND onnx_path = ? AND conversion_success",
                used,
            )
    finally:
        con.close()
    return len(results)


_UPSERT_MODEL = """INSERT INTO models (model_id, model_name, model_type) VALUES (?, ?, ?)
    ON CONFLICT (model_id) DO UPDATE SET
        model_type = coalesce(models.model_type, EXCLUDED.model_type),
        model_name = coalesce(models.model_name, EXCLUDED.model_name)"""
_UPSERT_HUB_FILE = """INSERT INTO onnx_hub_files (model_id, onnx_path, found, local_path, file_size_bytes,
        verification_status, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (model_id, onnx_path) DO UPDATE SET found = EXCLUDED.found,
        local_path = coalesce(EXCLUDED.local_path, onnx_hub_files.local_path),
        file_size_bytes = coalesce(EXCLUDED.file_size_bytes, onnx_hub_files.file_size_bytes),
        verification_status = coalesce(EXCLUDED.verification_status, onnx_hub_files.verification_status),
        checked_at = EXCLUDED.checked_at"""


def _attempt_of(result: Mapping[str, Any]) -> OnnxConversion:
    """A verifier's conversion, described by its cache manifest when it succeeded."""
    model_id, file_path = str(result["model_id"]), str(result["file_path"])
    local = result.get("local_path")
    if not result["success"] or not local:
        return OnnxConversion(
            model_id=model_id,
            onnx_path=file_path,
            conversion_success=False,
            model_type=result.get("model_type"),
            conversion_config=result.get("conversion_config"),
            error_message=result.get("error"),
        )
    path = Path(local)
    record = read_manifest(path.parent) or {}
    created = record.get("created_at")
    return OnnxConversion(
        model_id=model_id,
        onnx_path=file_path,
        conversion_success=True,
        model_type=result.get("model_type"),
        local_path=str(path),
        conversion_seconds=record.get("seconds"),
        conversion_config=result.get("conversion_config") or record.get("config"),
        opset_version=record.get("opset"),
        exporter=record.get("exporter"),
        file_size_bytes=files_size(record) if record else None,
        sha256=(record.get("files") or {}).get(path.name, {}).get("sha256"),
        max_abs_diff=record.get("max_abs_diff"),
        conversion_time=datetime.fromtimestamp(float(created), timezone.utc) if created else None,
    )
