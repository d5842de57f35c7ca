"""A run's rows, appended to a journal beside the database as they arrive, so a killed session loses
nothing.

The controller opens `<db>.journal-<run_uid>.jsonl` at its first row: a header line with the run's
environment, then one JSON line per finished row, each written with a single `write` on an
O_APPEND descriptor (the kernel has it once `write` returns: a `kill -9` of the process cannot
lose it; a power cut can, and an fsync per row would cost more than the row). The writer holds
the journal's file lock while it lives. At session end the run is stored and the journal
removed; a journal whose lock is free was left by a killed session, and `recover_journals` stores
it as an interrupted run. Storing is idempotent by run_uid, so a kill between the commit and the
removal stores nothing twice.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from pytest_hfmodels.cases.defaults import DEFAULT_LOCK_TIMEOUT_S
from pytest_hfmodels.db.environment import RunEnvironment, scrub_secrets
from pytest_hfmodels.db.spill import collector_paused, rows_table
from pytest_hfmodels.db.store import insert_run, open_database
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.results import Measurement, ResultRow

JOURNAL_FORMAT = 1

_ROW_NAMES = tuple(field.name for field in dataclasses.fields(ResultRow))
_ROW_VALUES = operator.attrgetter(*_ROW_NAMES)
_MEASUREMENT_NAMES = tuple(field.name for field in dataclasses.fields(Measurement))
_MEASUREMENT_VALUES = operator.attrgetter(*_MEASUREMENT_NAMES)


def _row_record(row: ResultRow) -> dict[str, object]:
    """`row.to_dict()`, key for key, without dataclasses.asdict's recursive deep copy.

    asdict was 50 us of the 77 us a row's journal line took; a row holds primitives only, which
    a copy would leave as they are, so the JSON written is the same.
    """
    record = dict(zip(_ROW_NAMES, _ROW_VALUES(row), strict=True))
    record["measurement"] = dict(zip(_MEASUREMENT_NAMES, _MEASUREMENT_VALUES(row.measurement), strict=True))
    return record


def journal_path(db_path: Path, run_uid: str) -> Path:
    return db_path.with_name(f"{db_path.name}.journal-{run_uid}.jsonl")


def pending_journals(db_path: Path) -> list[Path]:
    """Journals beside the database, live or left by killed sessions, oldest first."""
    found = db_path.parent.glob(f"{db_path.name}.journal-*.jsonl")
    return sorted((p for p in found if p.is_file() and not p.is_symlink()), key=lambda p: p.stat().st_mtime)


class RunJournal:
    """The open journal of this session's run: `append` each row, `close` once the run is stored."""

    def __init__(self, db_path: Path, environment: RunEnvironment) -> None:
        self.path = journal_path(db_path, environment.run_uid)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path) + ".lock", timeout=0)
        self._lock.acquire()  # a fresh uuid in the name: nobody else can hold it
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        header = {"journal": JOURNAL_FORMAT, "environment": environment.to_dict()}
        self._write(header)

    def append(self, row: ResultRow) -> None:
        self._write({"row": _row_record(row)})

    def close(self, *, remove: bool) -> None:
        """Stop writing; `remove` once the rows are stored (or spilled) elsewhere."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            self.path.unlink(missing_ok=True)
            Path(self._lock.lock_file).unlink(missing_ok=True)  # still held: no one can be waiting on it
        self._lock.release()

    def _write(self, record: dict[str, object]) -> None:
        assert self._fd is not None, "journal closed"
        # Tokens in an error message must not reach the disk, here any more than in the database.
        line = (scrub_secrets(json.dumps(record, default=str)) or "") + "\n"
        os.write(self._fd, line.encode("utf-8"))


@dataclass(frozen=True)
class RecoveredRun:
    journal: Path
    run_id: int
    row_count: int


def recover_journals(db_path: Path, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> list[RecoveredRun]:
    """Store every journal whose writer is gone as an interrupted run, then remove it.

    A journal still locked belongs to a live session and is left alone. A last line cut short by the
    kill is dropped (its row never finished arriving); any other unreadable line is an error naming
    the journal, which is then kept.
    """
    recovered = []
    for path in pending_journals(db_path):
        lock = FileLock(str(path) + ".lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            continue  # a live session is writing it
        try:
            if not path.exists():  # stored by another recovering process meanwhile
                continue
            environment, rows = read_journal(path)
            con = open_database(db_path, lock_timeout_s=lock_timeout_s)
            try:
                run_id = insert_run(con, environment, rows_table(rows), None, interrupted=True)
            finally:
                con.close()
            path.unlink()
            Path(lock.lock_file).unlink(missing_ok=True)
            recovered.append(RecoveredRun(path, run_id, len(rows)))
        finally:
            lock.release()
    return recovered


def read_journal(path: Path) -> tuple[RunEnvironment, list[ResultRow]]:
    """The run environment and rows a journal holds; its end time is its last write."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read the journal: {exc}") from exc
    lines = raw.split(b"\n")
    if lines and lines[-1]:
        lines = lines[:-1]  # the write a kill interrupted: that row is not in the journal
    # 100k parsed dicts, then as many rows, set off full collections that walk all of them again
    # and again: with the collector paused, 100k rows read in 4.7 s instead of 7.7 s.
    with collector_paused():
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise ResultsError(f"{path}:{number}: not a journal line: {exc}") from exc
        if not records or records[0].get("journal") != JOURNAL_FORMAT:
            raise ResultsError(f"{path}: not a pytest-hfmodels journal (format {JOURNAL_FORMAT})")
        environment = RunEnvironment.from_dict(records[0]["environment"])
        rows = _rows_of(path, records[1:])
    finished = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    return dataclasses.replace(environment, finished_at=finished), rows


def _rows_of(path: Path, records: Sequence[dict[str, object]]) -> list[ResultRow]:
    rows: dict[str, ResultRow] = {}
    for record in records:
        try:
            row = ResultRow.from_dict(dict(record["row"]))  # type: ignore[call-overload]
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"{path}: a row the journal cannot be read back from: {exc}") from exc
        rows[row.case_id] = row  # the recorder journals a case again when a later phase fails it
    return list(rows.values())
