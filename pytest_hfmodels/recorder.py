"""The controller-side pytest plugin that collects result rows and stores them once per session.

Rows are built wherever a case runs and travel in `report.user_properties`, so under
pytest-xdist they reach the controller through `pytest_runtest_logreport` like any report.
At session end the controller stores them in one transaction (`db.store_run`, which spills to
a file when the database is locked) and, when asked, writes the per-run JSON of the original
verification tools. Nothing heavy is imported here: duckdb and pyarrow load inside `db` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from .db import DEFAULT_DB_PATH, DEFAULT_LOCK_TIMEOUT_S, StoredRun, store_run
from .errors import ResultsError
from .results import USER_PROPERTY, ResultRow
from .run_environment import RunEnvironment, scrub_secrets


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def add_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    """Options of the results database and JSON output; called from the plugin's pytest_addoption."""
    group.addoption(
        "--hf-db",
        dest="hf_db",
        metavar="PATH",
        default=None,
        help=f"results database (default: ini hf_db, else {DEFAULT_DB_PATH} under rootdir)",
    )
    group.addoption(
        "--hf-no-db",
        dest="hf_no_db",
        action="store_true",
        default=False,
        help="do not store results in the database",
    )
    group.addoption(
        "--hf-json",
        dest="hf_json",
        metavar="PATH",
        default=None,
        help="also write this run's results as JSON (the original tools' format)",
    )
    group.addoption(
        "--hf-db-timeout",
        dest="hf_db_timeout",
        metavar="SECONDS",
        type=_seconds,
        default=None,
        help="how long to wait for a locked database before spilling results to a file "
        f"(default: ini hf_db_timeout, else {DEFAULT_LOCK_TIMEOUT_S:g})",
    )
    parser.addini("hf_db", help="results database path, relative to rootdir", default=str(DEFAULT_DB_PATH))
    parser.addini(
        "hf_db_timeout",
        help="seconds to wait for a locked results database",
        default=f"{DEFAULT_LOCK_TIMEOUT_S:g}",
    )


def _row_from_property(value: object) -> ResultRow | None:
    if not isinstance(value, Mapping):
        return None
    try:
        return ResultRow.from_dict(dict(value))
    except (TypeError, KeyError):
        return None


class ResultRecorder:
    """Collects rows on the controller and stores them at session end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started_at = datetime.now(timezone.utc)
        self.rows: dict[str, ResultRow] = {}  #: by case id: a row arrives with every phase's report
        self.malformed = 0
        self.stored: StoredRun | None = None
        self.messages: list[str] = []
        self.db_path = self._database_path()
        self.json_path = self._json_path()
        self.lock_timeout_s = self._lock_timeout()

    def _database_path(self) -> Path | None:
        if self.config.getoption("hf_no_db"):
            return None
        option = self.config.getoption("hf_db")
        if option:
            return Path(self.config.invocation_params.dir, option)
        # Beside the project's ini file, like .pytest_cache. Without one, pytest guesses the rootdir
        # from path-like arguments (an option's value such as --hf-registry DIR counts), so the
        # directory pytest was started in is the predictable place.
        base = self.config.rootpath if self.config.inipath is not None else self.config.invocation_params.dir
        return Path(base, str(self.config.getini("hf_db")))

    def _json_path(self) -> Path | None:
        option = self.config.getoption("hf_json")
        return Path(self.config.invocation_params.dir, option) if option else None

    def _lock_timeout(self) -> float:
        option = self.config.getoption("hf_db_timeout")
        if option is not None:
            return float(option)
        try:
            return _seconds(str(self.config.getini("hf_db_timeout")))
        except argparse.ArgumentTypeError as exc:
            raise pytest.UsageError(f"ini hf_db_timeout: {exc}") from None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started_at = datetime.now(timezone.utc)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for entry in report.user_properties:
            if len(entry) != 2 or entry[0] != USER_PROPERTY:
                continue
            row = _row_from_property(entry[1])
            if row is None:
                self.malformed += 1
            elif self.rows.get(row.case_id) is None or self.rows[row.case_id].status != "fail":
                # One row per case: when several tests share a case, a failure is what stays.
                self.rows[row.case_id] = row

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
        if not self.rows:
            return
        rows = sorted(self.rows.values(), key=lambda row: row.case_id)
        environment = RunEnvironment.capture(
            ["pytest", *self.config.invocation_params.args],
            _detected_hardware(self.config),
            started_at=self.started_at,
            cwd=self.config.invocation_params.dir,
        )
        if self.db_path is not None:
            self._store(environment, rows, int(exitstatus))
        if self.json_path is not None:
            run_id = self.stored.run_id if self.stored else None
            write_results_json(self.json_path, environment, rows, run_id=run_id)
            self.messages.append(f"hfmodels: results JSON written to {self.json_path}")

    def _store(self, environment: RunEnvironment, rows: Sequence[ResultRow], exit_status: int) -> None:
        assert self.db_path is not None
        # The spill warning is shown in the terminal summary, not as a stray warning line.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                self.stored = store_run(
                    self.db_path,
                    environment,
                    rows,
                    exit_status=exit_status,
                    lock_timeout_s=self.lock_timeout_s,
                )
            except ResultsError as exc:
                self.messages.append(f"hfmodels: results NOT stored: {exc}")
                return
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
        from .db_run_conversions import record_run_conversions

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


def _detected_hardware(config: pytest.Config) -> list[dict[str, Any]] | None:
    # Imported here: the state module pulls in the plugin's case machinery.
    from .state import detected_hardware

    return detected_hardware(config)


def results_json(
    environment: RunEnvironment, rows: Sequence[ResultRow], *, run_id: int | None
) -> dict[str, Any]:
    """The per-run JSON of the original tools: results and performance by mode, device and model."""
    results: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    performance: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    for row in sorted(rows, key=lambda r: (r.mode, r.hardware, r.model_key, r.measurement.batch_size or 0)):
        slot = results.setdefault(row.mode, {}).setdefault(row.hardware, {})
        mean_ms = row.measurement.latency_mean_ms
        entry = slot.setdefault(row.model_key, {"success": True, "average_time": None, "error_type": None})
        # Several batch sizes share a slot: it succeeds only if all did; the first timing is kept.
        entry["success"] = entry["success"] and row.status == "pass"
        if entry["average_time"] is None and mean_ms is not None:
            entry["average_time"] = mean_ms / 1000.0
        if entry["error_type"] is None and row.status == "fail":
            entry["error_type"] = row.error_class
        measured = {name: value for name, value in vars(row.measurement).items() if value is not None}
        if measured:
            performance.setdefault(row.mode, {}).setdefault(row.hardware, {}).setdefault(
                row.model_key, []
            ).append({"case_id": row.case_id, **measured})
    return {
        "results": results,
        "examples": {},  # rows carry no model outputs
        "performance": performance,
        "hardware": [dict(item) for item in environment.hardware],
        "metadata": {
            "timestamp": (environment.finished_at or environment.started_at).isoformat(),
            "versions": dict(environment.package_versions),
            "command": environment.command_line,
            "git_commit": environment.git_commit,
            "host": environment.host,
            "run_uid": environment.run_uid,
            "run_id": run_id,
        },
    }


def write_results_json(
    path: Path, environment: RunEnvironment, rows: Sequence[ResultRow], *, run_id: int | None
) -> None:
    """Write `results_json` atomically; secrets are scrubbed from the whole text."""
    text = scrub_secrets(json.dumps(results_json(environment, rows, run_id=run_id), indent=2)) or ""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text + "\n", encoding="utf-8")
    os.replace(temporary, path)
