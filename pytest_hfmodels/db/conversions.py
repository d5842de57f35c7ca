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
from pytest_hfmodels.cases.settings import DEFAULT_LOCK_TIMEOUT_S
from pytest_hfmodels.db.schema import rollback
from pytest_hfmodels.db.spill import scrub_text_array, write_spill
from pytest_hfmodels.db.store import open_database
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.results import ResultRow

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_COLUMNS = (
    "model_id",
    "model_type",
    "onnx_path",
    "local_path",
    "conversion_time_s",
    "config",
    "success",
    "error",
    "opset",
    "exporter",
    "file_size_bytes",
    "sha256",
    "max_abs_diff",
    "converted_at",
)


@dataclass(frozen=True)
class OnnxConversion:
    """One export of a model to ONNX, successful or not."""

    model_id: str
    onnx_path: str  #: file name inside the repo the export stands for (e.g. model.onnx)
    success: bool
    model_type: str | None = None
    local_path: str | None = None
    conversion_time_s: float | None = None
    config: Mapping[str, Any] | None = None  #: export settings, stored as JSON
    error: str | None = None
    opset: int | None = None
    exporter: str | None = None  #: e.g. torch.onnx.export(dynamo=True)
    file_size_bytes: int | None = None
    sha256: str | None = None
    max_abs_diff: float | None = None  #: largest |onnx - pytorch| in validation
    converted_at: datetime | None = None  #: defaults to the time of recording


def conversions_table(conversions: list[OnnxConversion]) -> pa.Table:
    import pyarrow as pa

    schema = pa.schema(
        [
            ("model_id", pa.string()),
            ("model_type", pa.string()),
            ("onnx_path", pa.string()),
            ("local_path", pa.string()),
            ("conversion_time_s", pa.float64()),
            ("config", pa.string()),
            ("success", pa.bool_()),
            ("error", pa.string()),
            ("opset", pa.int64()),
            ("exporter", pa.string()),
            ("file_size_bytes", pa.int64()),
            ("sha256", pa.string()),
            ("max_abs_diff", pa.float64()),
            ("converted_at", pa.timestamp("us")),
        ]
    )
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    records = []
    for item in conversions:
        converted_at = item.converted_at or now
        if converted_at.tzinfo is not None:
            converted_at = converted_at.astimezone(timezone.utc).replace(tzinfo=None)
        records.append(
            {
                **{name: getattr(item, name) for name in _COLUMNS},
                "config": json.dumps(dict(item.config)) if item.config is not None else None,
                "converted_at": converted_at,
            }
        )
    table = pa.Table.from_pylist(records, schema=schema)
    # Errors and export settings can quote a token as easily as a run's error messages can.
    return pa.Table.from_arrays([scrub_text_array(column) for column in table.columns], schema=schema)


def upsert_conversions(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    """Insert or replace conversion rows in one transaction; use counts are kept."""
    import duckdb

    updates = ", ".join(
        f"{name} = EXCLUDED.{name}" for name in _COLUMNS if name not in ("model_id", "onnx_path")
    )
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("incoming_conversions", table)
        con.execute(
            f"""INSERT INTO onnx_conversions ({", ".join(_COLUMNS)})
                SELECT {", ".join(_COLUMNS)} FROM incoming_conversions
                ON CONFLICT (model_id, onnx_path) DO UPDATE SET {updates}"""
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
    """Count one use of a converted file; False when no such conversion is recorded."""
    con = open_database(db_path, lock_timeout_s=lock_timeout_s)
    try:
        used = con.execute(
            """UPDATE onnx_conversions SET use_count = use_count + 1, last_used_at = ?
               WHERE model_id = ? AND onnx_path = ? RETURNING use_count""",
            [datetime.now(timezone.utc).replace(tzinfo=None), model_id, onnx_path],
        ).fetchall()
    finally:
        con.close()
    return bool(used)


def conversions_of(rows: Iterable[ResultRow]) -> tuple[list[OnnxConversion], Counter[tuple[str, str]]]:
    """Conversions named by `rows` (one per file) and how many rows used each."""
    found: dict[str, OnnxConversion] = {}
    uses: Counter[tuple[str, str]] = Counter()
    for row in rows:
        local = row.measurement.onnx_local_path
        # A Hub model's config run with random weights (--hf-weights random) shares the model's
        # id, but its export is not a conversion of that model.
        if not local or row.status != "pass" or (row.source == "hub" and row.weights == "random"):
            continue
        path = Path(local)
        if local not in found:
            record = read_manifest(path.parent)
            if record is None:
                continue  # the cache entry was cleaned since: nothing to describe it with
            found[local] = OnnxConversion(
                model_id=row.model_id,
                onnx_path=path.name,
                success=True,
                model_type=row.model_type,
                local_path=local,
                conversion_time_s=record.get("seconds"),
                config=record,
                opset=record.get("opset"),
                exporter=record.get("exporter"),
                file_size_bytes=files_size(record),
                sha256=record["files"].get(path.name, {}).get("sha256"),
                max_abs_diff=record.get("max_abs_diff"),
            )
        uses[(row.model_id, path.name)] += 1
    return list(found.values()), uses


def record_run_conversions(
    db_path: Path, rows: Iterable[ResultRow], *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> int:
    """Upsert the run's conversions and count their uses; returns how many conversions."""
    conversions, uses = conversions_of(rows)
    if not conversions:
        return 0
    con = open_database(db_path, lock_timeout_s=lock_timeout_s)
    try:
        upsert_conversions(con, conversions_table(conversions))
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        con.executemany(
            "UPDATE onnx_conversions SET use_count = use_count + ?, last_used_at = ? "
            "WHERE model_id = ? AND onnx_path = ?",
            [[count, now, model_id, onnx_path] for (model_id, onnx_path), count in uses.items()],
        )
    except Exception as exc:
        raise ResultsError(f"{db_path}: could not record the run's ONNX conversions: {exc}") from exc
    finally:
        con.close()
    return len(conversions)
