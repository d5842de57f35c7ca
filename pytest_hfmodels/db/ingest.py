"""Loading spill files (results a run could not store) into the database.

Each file is stored in its own transaction and deleted afterwards. Storing is idempotent (runs
by run_uid, conversions by model and path), so a crash between commit and delete, or ingesting
a copy of a file twice, stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_hfmodels.cases.defaults import DEFAULT_LOCK_TIMEOUT_S
from pytest_hfmodels.db.conversions import upsert_conversions
from pytest_hfmodels.db.spill import read_spill
from pytest_hfmodels.db.store import insert_run, open_database
from pytest_hfmodels.errors import ResultsError


@dataclass(frozen=True)
class IngestedSpill:
    path: Path
    kind: str  #: run | onnx_conversion
    row_count: int
    run_id: int | None  #: the run the rows now belong to (kind "run")


def ingest_spill(
    db_path: Path,
    files: Sequence[Path],
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> list[IngestedSpill]:
    """Load spill files into the database, one transaction each, deleting each file once stored."""
    spills = [read_spill(path) for path in files]  # every file is checked before any is stored
    con = open_database(db_path, lock_timeout_s=lock_timeout_s)
    ingested: list[IngestedSpill] = []
    try:
        for spill in spills:
            run_id: int | None = None
            if spill.kind == "run":
                if spill.environment is None:
                    raise ResultsError(f"{spill.path}: run spill file without its run environment")
                run_id = insert_run(con, spill.environment, spill.table, spill.exit_status)
            elif spill.kind == "onnx_conversion":
                upsert_conversions(con, spill.table)
            else:
                raise ResultsError(f"{spill.path}: unknown spill kind {spill.kind!r}")
            spill.path.unlink()
            ingested.append(IngestedSpill(spill.path, spill.kind, spill.table.num_rows, run_id))
    finally:
        con.close()
    return ingested
