"""The ONNX conversions a run used, recorded in `onnx_conversions` by the controller.

A row of the onnxruntime or openvino modes names its file (`onnx_local_path`); the conversion's
own record, `conversion.json`, lies beside it in the cache. Reading it here keeps result rows to
primitives while the database still learns the exporter, opset, size, hash and diffs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from pytest_hfmodels.cache.manifest import read_record
from pytest_hfmodels.cases.settings import DEFAULT_LOCK_TIMEOUT_S
from pytest_hfmodels.db.conversions import OnnxConversion, conversions_table, upsert_conversions
from pytest_hfmodels.db.store import open_database
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.results import ResultRow


def conversions_of(rows: Iterable[ResultRow]) -> tuple[list[OnnxConversion], Counter[tuple[str, str]]]:
    """Conversions named by `rows` (one per file) and how many rows used each."""
    found: dict[str, OnnxConversion] = {}
    uses: Counter[tuple[str, str]] = Counter()
    for row in rows:
        local = row.measurement.onnx_local_path
        if not local or row.status != "pass":
            continue
        path = Path(local)
        if local not in found:
            record = read_record(path.parent)
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
                file_size_bytes=record.get("size"),
                sha256=record.get("sha256"),
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
