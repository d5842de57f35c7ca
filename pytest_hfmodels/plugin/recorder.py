"""The controller-side pytest plugin that collects result rows and stores them once per session.

Rows are built wherever a case runs and travel in `report.user_properties`, so under
pytest-xdist they reach the controller through `pytest_runtest_logreport` like any report.
Each row is appended to the run's journal beside the database as it arrives (`db.journal`), so a
killed session loses nothing: the next session that stores a run stores the journals of killed
ones first, as interrupted runs. At session end the controller stores its rows in one transaction
(`db.store.store_run`, which spills to a file when the database is locked), removes its journal
and, when asked, writes the per-run JSON of the original verification tools
(`report.tools_json`). The recorder exists only once a row arrived (`activation.RowWatcher`), and
the `db` and `report` modules are imported by the calls that use them (duckdb and pyarrow inside).
Its options are declared with the others in `options` and read into `Settings`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.plugin.session import detected_hardware, plugin_session
from pytest_hfmodels.results import USER_PROPERTY, ResultRow

if TYPE_CHECKING:
    from pytest_hfmodels.db.environment import RunEnvironment
    from pytest_hfmodels.db.journal import RunJournal
    from pytest_hfmodels.db.spill import RunRows
    from pytest_hfmodels.db.store import StoredRun


def is_row(entry: tuple[str, object]) -> bool:
    """A `user_properties` entry carrying a result row."""
    return len(entry) == 2 and entry[0] == USER_PROPERTY


def _row_from_property(value: object) -> ResultRow | None:
    if not isinstance(value, Mapping):
        return None
    try:
        return ResultRow.from_dict(dict(value))
    except (TypeError, KeyError):
        return None


class ResultRecorder:
    """Collects rows on the controller and stores them at session end."""

    def __init__(self, config: pytest.Config, started_at: datetime) -> None:
        self.config = config
        self.started_at = started_at
        self.rows: dict[str, ResultRow] = {}  #: by case id: a row arrives with every phase's report
        self.run_rows: RunRows | None = None  #: the same rows, for the database, converted as they come
        self.malformed = 0
        self.stored: StoredRun | None = None
        self.messages: list[str] = []
        settings = plugin_session(config).settings
        self.db_path = settings.db_path
        self.json_path = settings.json_path
        self.lock_timeout_s = settings.db_lock_timeout_s
        self.environment: RunEnvironment | None = None  #: captured at the first row; its run_uid is the run's
        self.journal: RunJournal | None = None
        self._journal_failed = False  #: warned once; rows are still stored at session end

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for entry in report.user_properties:
            if not is_row(entry):
                continue
            row = _row_from_property(entry[1])
            if row is None:
                self.malformed += 1
            elif self.rows.get(row.case_id) is None or self.rows[row.case_id].status != "fail":
                # One row per case: when several tests share a case, a failure is what stays.
                self.rows[row.case_id] = row
                self._journal(row)
                self._put(row)

    def _journal(self, row: ResultRow) -> None:
        if self.db_path is None or self._journal_failed:
            return
        if self.environment is None:
            self.environment = self._capture()
        from pytest_hfmodels.db.journal import RunJournal

        try:
            if self.journal is None:
                self.journal = RunJournal(self.db_path, self.environment)
            self.journal.append(row)
        except OSError as exc:  # the rows are still stored at session end; only the safety net is gone
            self.messages.append(f"hfmodels: WARNING: no journal beside {self.db_path}: {exc}")
            self._journal_failed = True

    def _put(self, row: ResultRow) -> None:
        if self.db_path is None:
            return
        if self.run_rows is None:
            from pytest_hfmodels.db.spill import RunRows

            self.run_rows = RunRows()
        self.run_rows.put(row)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
        if not self.rows:
            return
        rows = sorted(self.rows.values(), key=lambda row: row.case_id)
        # The journal's run_uid stays the run's: storing a journal of this run later stores nothing
        # twice. Only the end time and the hardware can have changed since its first row.
        environment = (
            self.environment.finished(detected_hardware(self.config))
            if self.environment is not None
            else self._capture()
        )
        if self.db_path is not None:
            self._recover()
            self._store(environment, rows, int(exitstatus))
        if self.json_path is not None:
            from pytest_hfmodels.report.tools_json import write_results_json

            run_id = self.stored.run_id if self.stored else None
            write_results_json(self.json_path, environment, rows, run_id=run_id)
            self.messages.append(f"hfmodels: results JSON written to {self.json_path}")

    def _capture(self) -> RunEnvironment:
        from pytest_hfmodels.db.environment import RunEnvironment

        return RunEnvironment.capture(
            ["pytest", *self.config.invocation_params.args],
            detected_hardware(self.config),
            started_at=self.started_at,
            cwd=self.config.invocation_params.dir,
        )

    def _recover(self) -> None:
        from pytest_hfmodels.db.journal import recover_journals

        assert self.db_path is not None
        try:
            recovered = recover_journals(self.db_path, lock_timeout_s=self.lock_timeout_s)
        except ResultsError as exc:
            self.messages.append(f"hfmodels: a killed session's journal NOT stored: {exc}")
            return
        for run in recovered:
            self.messages.append(
                f"hfmodels: {run.row_count} results of a killed session stored as interrupted run "
                f"{run.run_id} (from {run.journal.name})"
            )

    def _store(self, environment: RunEnvironment, rows: Sequence[ResultRow], exit_status: int) -> None:
        from pytest_hfmodels.db.store import store_run

        assert self.db_path is not None
        # The spill warning is shown in the terminal summary, not as a stray warning line.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                self.stored = store_run(
                    self.db_path,
                    environment,
                    self.run_rows if self.run_rows is not None else rows,
                    exit_status=exit_status,
                    lock_timeout_s=self.lock_timeout_s,
                )
            except ResultsError as exc:
                where = f"; they are kept in {self.journal.path}" if self.journal else ""
                self.messages.append(f"hfmodels: results NOT stored: {exc}{where}")
                if self.journal is not None:
                    self.journal.close(remove=False)
                return
        if self.journal is not None:  # stored, or spilled to a file that holds them
            self.journal.close(remove=True)
        stored = self.stored
        if stored.run_id is not None:
            self.messages.append(
                f"hfmodels: {stored.row_count} results stored in run {stored.run_id} of {self.db_path}"
            )
            self._record_conversions(rows)
        else:
            self.messages.append(
                f"hfmodels: WARNING: {stored.row_count} results spilled to {stored.spill_path} "
                f"({stored.reason}); load them with: "
                f"hfmodels db ingest --db {self.db_path} {stored.spill_path}"
            )

    def _record_conversions(self, rows: Sequence[ResultRow]) -> None:
        from pytest_hfmodels.db.conversions import record_run_conversions

        assert self.db_path is not None
        try:
            count = record_run_conversions(self.db_path, rows, lock_timeout_s=self.lock_timeout_s)
        except ResultsError as exc:
            self.messages.append(f"hfmodels: ONNX conversions NOT recorded: {exc}")
            return
        if count:
            self.messages.append(f"hfmodels: {count} ONNX conversions recorded in onnx_conversions")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.malformed:
            terminalreporter.write_line(
                f"hfmodels: {self.malformed} result entries could not be read", yellow=True
            )
        for message in self.messages:
            spilled = "spilled" in message or "NOT stored" in message
            terminalreporter.write_line(message, yellow=spilled)
