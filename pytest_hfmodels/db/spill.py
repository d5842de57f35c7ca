"""Result rows as one Arrow table: what a run inserts, and what it spills when it cannot insert.

The same table is bulk-inserted into DuckDB and, when the database cannot be written (locked by
another process, unreadable), saved as a Parquet spill file beside it. The spill file carries
the run environment in its metadata, so `ingest_spill` later stores exactly what would have
been stored. Files are written under a temporary name and renamed, so a reader never sees half
of one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import operator
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hfmodels.db.environment import HF_TOKEN_PATTERN, REDACTED, RunEnvironment, secret_values
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.results import Measurement, ResultRow

if TYPE_CHECKING:
    import pyarrow as pa

#: Parquet metadata key holding what the spill file is and the run it belongs to
SPILL_METADATA_KEY = b"hfmodels.spill"
SPILL_FORMAT = 1
SPILL_GLOB = "spill-*.parquet"

ROW_FIELDS = tuple(f for f in dataclasses.fields(ResultRow) if f.name != "measurement")
MEASUREMENT_FIELDS = dataclasses.fields(Measurement)


def _arrow_type(annotation: object) -> pa.DataType:
    import pyarrow as pa

    # results.py uses postponed annotations, so field types arrive as text like "int | None".
    base = str(annotation).replace(" | None", "").strip()
    types: dict[str, pa.DataType] = {
        "str": pa.string(),
        "float": pa.float64(),
        "int": pa.int64(),
        "bool": pa.bool_(),
    }
    if base not in types:
        raise TypeError(f"no Arrow type for a result field annotated {annotation!r}")
    return types[base]


def row_schema() -> pa.Schema:
    """Arrow schema of flattened rows: ResultRow fields, then Measurement fields."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, _arrow_type(f.type)) for f in (*ROW_FIELDS, *MEASUREMENT_FIELDS)])


_CASE_ID_OF = operator.attrgetter("case_id")
_MEASUREMENT_OF = operator.attrgetter("measurement")

#: every Hugging Face token by shape starts with this text (HF_TOKEN_PATTERN); a column without it
#: anywhere holds no token, and skips the regex, the one costly kernel of scrubbing
TOKEN_PREFIX = "hf_"


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (restored after it).

    Turning 100k rows into tuples or dicts allocates as many containers, which sets off full
    collections that walk every live row again: a quarter of the conversion's time. What the block
    allocates holds primitives only, so nothing is left for the collector to find.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def rows_table(rows: Iterable[ResultRow]) -> pa.Table:
    """Rows as an Arrow table, one per case id (the last wins), with secrets scrubbed from text."""
    import pyarrow as pa

    schema = row_schema()
    row_type = pa.struct(list(schema)[: len(ROW_FIELDS)])
    measurement_type = pa.struct(list(schema)[len(ROW_FIELDS) :])
    rows = list(rows)  # read twice below
    unique = list(dict(zip(map(_CASE_ID_OF, rows), rows, strict=True)).values())  # the last of a case wins
    with collector_paused():
        # Each row's own attribute dict goes to Arrow, which converts the list of them to a struct
        # array in C++, reading each field by name (a key the struct does not have, `measurement`,
        # is not read): no per-field Python loop, no transpose, no tuple built per row (a tuple of
        # 59 attribute reads was 15% of the conversion). The converter is the one a per-column
        # pa.array uses: same types, same errors.
        row_values = pa.array(list(map(vars, unique)), row_type)
        measurement_values = pa.array(list(map(vars, map(_MEASUREMENT_OF, unique))), measurement_type)
    columns = [*row_values.flatten(), *measurement_values.flatten()]
    secrets = secret_values()  # once per table, not once per column
    return pa.Table.from_arrays([scrub_text_array(column, secrets) for column in columns], schema=schema)


#: rows a run converts to Arrow at a time while it runs (`RunRows`): a few ms on the controller
RUN_BATCH_ROWS = 4096
#: converted batches are joined into chunks of this many rows while the run goes: DuckDB's insert
#: threads each take whole chunks, and a run stored as 4,096-row chunks took 10-25% longer than
#: as 16,384-row ones (the store's row group, `store.ROW_GROUP_ROWS`)
RUN_CHUNK_ROWS = 4 * RUN_BATCH_ROWS


class RunRows:
    """A run's rows, converted to Arrow RUN_BATCH_ROWS at a time as they arrive, one row per case.

    Rows arrive one per finished case, while the run goes; converting them all at session end was
    half of the time storing 100k rows took (0.36 of 0.66 s), which every user waited for after
    the last test. Converted as they come (4,096 rows take a few ms, spread over thousands of
    cases), only the last partial batch is left when the run is stored. A later row of a case
    replaces the earlier, converted or not, as `rows_table` keeps the last.
    """

    def __init__(self) -> None:
        self._pending: dict[str, ResultRow] = {}  #: case id -> row, not converted yet
        self._batches: list[pa.Table] = []  #: chunks of RUN_CHUNK_ROWS, then batches not joined yet
        self._chunks = 0  #: how many of _batches are joined chunks
        self._converted: dict[str, int] = {}  #: case id -> its row's index in the batches
        self._replaced: list[int] = []  #: indexes of converted rows a later row of the case replaced
        self._converted_count = 0

    def put(self, row: ResultRow) -> None:
        """The case's row: its first, or one replacing the earlier."""
        index = self._converted.pop(row.case_id, None)
        if index is not None:
            self._replaced.append(index)
        self._pending[row.case_id] = row
        if len(self._pending) >= RUN_BATCH_ROWS:
            self._convert_pending()

    def __len__(self) -> int:
        return len(self._converted) + len(self._pending)

    def _convert_pending(self) -> None:
        import pyarrow as pa

        self._batches.append(rows_table(self._pending.values()))
        first = self._converted_count
        self._converted.update((case_id, index) for index, case_id in enumerate(self._pending, first))
        self._converted_count += len(self._pending)
        self._pending = {}
        if len(self._batches) - self._chunks == RUN_CHUNK_ROWS // RUN_BATCH_ROWS:
            self._batches[self._chunks :] = [pa.concat_tables(self._batches[self._chunks :]).combine_chunks()]
            self._chunks += 1

    def table(self) -> pa.Table:
        """Every case's row as one table, about in the order the cases finished.

        Not sorted: nothing reads a run's rows in stored order (every query orders its own), and
        sorting 100k rows by case id took 54 ms of the session-end store (of 0.56 s here).
        """
        import pyarrow as pa

        parts = [*self._batches, rows_table(self._pending.values())]
        table = pa.concat_tables(parts)  # chunks side by side, nothing copied
        if self._replaced:
            keep = [True] * table.num_rows
            for index in self._replaced:
                keep[index] = False
            table = table.filter(pa.array(keep))
        return table


def scrub_text_array(array: pa.Array, secrets: Sequence[str] | None = None) -> pa.Array:
    """`scrub_secrets` for a whole Arrow column at once (other types pass through).

    `secrets`: the token values to redact, `secret_values()` when not given.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_string(array.type):
        return array
    # Column-wise in Arrow's kernels: per-value Python regexes cost more than the insert itself.
    for value in secret_values() if secrets is None else secrets:
        array = pc.replace_substring(array, value, REDACTED)
    # The regex costs 3x a plain substring search: run it only on a column that has the prefix.
    if pc.any(pc.match_substring(array, TOKEN_PREFIX)).as_py():
        array = pc.replace_substring_regex(array, HF_TOKEN_PATTERN.pattern, REDACTED)
    return array


@dataclass(frozen=True)
class SpillFile:
    """The contents of one spill file."""

    path: Path
    kind: str  #: "run" (a test run's rows) or "onnx_conversion"
    table: pa.Table
    environment: RunEnvironment | None  #: set for kind "run"
    exit_status: int | None


def _spill_name(now: datetime) -> str:
    return f"spill-{now.strftime('%Y%m%dT%H%M%S%fZ')}-{os.getpid()}.parquet"


def write_spill(
    directory: Path,
    table: pa.Table,
    *,
    kind: str,
    environment: RunEnvironment | None = None,
    exit_status: int | None = None,
) -> Path:
    """Save `table` as a new spill file in `directory`; returns its path."""
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / _spill_name(datetime.now(timezone.utc))
    description = {
        "format": SPILL_FORMAT,
        "kind": kind,
        "environment": environment.to_dict() if environment else None,
        "exit_status": exit_status,
    }
    metadata = dict(table.schema.metadata or {})
    metadata[SPILL_METADATA_KEY] = json.dumps(description).encode()
    # A leading dot keeps the half-written file out of `spill-*.parquet` globs.
    temporary = directory / f".{target.name}.tmp"
    try:
        pq.write_table(table.replace_schema_metadata(metadata), temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ResultsError(f"{target}: could not write the spill file: {exc}") from exc
    return target


def read_spill(path: Path) -> SpillFile:
    """Read a spill file written by `write_spill`; errors name the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(f"{path}: not a readable spill file: {exc}") from exc
    raw = (table.schema.metadata or {}).get(SPILL_METADATA_KEY)
    if raw is None:
        raise ResultsError(
            f"{path}: not a pytest-hfmodels spill file (no {SPILL_METADATA_KEY.decode()} metadata)"
        )
    description: Mapping[str, Any] = json.loads(raw)
    if description.get("format") != SPILL_FORMAT:
        raise ResultsError(f"{path}: spill format {description.get('format')!r} is not {SPILL_FORMAT}")
    environment = description.get("environment")
    table = table.replace_schema_metadata(None)
    if description["kind"] == "run":
        table = _with_missing_columns(table, row_schema())
    return SpillFile(
        path=path,
        kind=str(description["kind"]),
        table=table,
        environment=RunEnvironment.from_dict(environment) if environment else None,
        exit_status=description.get("exit_status"),
    )


#: columns an older version wrote under another name -> their name now
_RENAMED = {"peak_memory_mb": "process_peak_rss_mb"}


def _with_missing_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A spill file written before a column existed gets it as nulls: nothing was measured there."""
    import pyarrow as pa

    names = [_RENAMED.get(name, name) for name in table.column_names]
    table = table.rename_columns(names)
    for field in schema:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table


def pending_spills(db_path: Path) -> list[Path]:
    """Spill files waiting beside a database, oldest first."""
    return sorted(db_path.parent.glob(SPILL_GLOB))
