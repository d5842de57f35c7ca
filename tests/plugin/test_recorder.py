"""The recorder as users run it: a pytest session (with and without xdist) storing its rows.

Each test run by pytester builds a real ResultRow (with a timing it measured) and appends it to
`user_properties`, exactly how the plugin's rows travel from workers to the controller.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from pytest_hfmodels import cli
from tests.results_helpers import hold_database, release

SUITE = """
import os
import time

import pytest

from pytest_hfmodels.results import USER_PROPERTY, Measurement, ResultRow

CASES = [(mode, batch) for mode in ("pipeline", "onnxruntime", "openvino") for batch in (1, 2)]


def measured(batch):
    start = time.perf_counter_ns()
    sum(range(1000 * batch))
    elapsed_ms = (time.perf_counter_ns() - start) / 1e6
    return Measurement(batch_size=batch, latency_mean_ms=elapsed_ms, latency_p50_ms=elapsed_ms, iterations=1,
                       timer="perf_counter_ns")


@pytest.mark.parametrize(("mode", "batch"), CASES)
def test_model(request, mode, batch):
    status = {"pipeline": "pass", "onnxruntime": "fail", "openvino": "skip"}[mode]
    row = ResultRow(
        nodeid=request.node.nodeid, case_id=f"bert-tiny-{mode}-cpu-b{batch}", model_key="bert-tiny",
        model_id="org/bert-tiny", family="bert", task="fill-mask", source="tiny", weights="random",
        model_type="bert", architecture="BertForMaskedLM", mode=mode, hardware="cpu", device_name=None,
        status=status,
        error_class="RuntimeError" if status == "fail" else None,
        error_message="failed with hf_abcdefghijklmnop" if status == "fail" else None,
        suggested_fix=None, duration_s=0.0, worker=os.environ.get("PYTEST_XDIST_WORKER", "main"),
        parameters=None, measurement=measured(batch) if status == "pass" else Measurement(batch_size=batch),
    )
    request.node.user_properties.append((USER_PROPERTY, row.to_dict()))
    if status == "skip":
        pytest.skip("openvino is not installed")
    assert status == "pass", "the runtime failed"


def test_not_a_model():
    pass
"""

# The plugin as installed: its pytest_configure registers the recorder on the controller.
BASE_ARGS = ("-p", "no:cacheprovider", "-p", "no:randomly")


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def stored(db: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("workers", ["0", "2"])
def test_the_same_suite_stores_the_same_rows_with_and_without_xdist(
    suite: pytest.Pytester, workers: str
) -> None:
    db = suite.path / "results.duckdb"
    result = suite.runpytest(*BASE_ARGS, "-n", workers, f"--hf-db={db}")
    result.assert_outcomes(passed=3, failed=2, skipped=2)
    result.stdout.fnmatch_lines([f"hfmodels: 6 results stored in run 1 of {db}"])
    assert stored(
        db, "SELECT status, count(*) FROM hardware_compatibility GROUP BY status ORDER BY status"
    ) == [("fail", 2), ("pass", 2), ("skip", 2)]
    assert stored(db, "SELECT count(*) FROM performance_results") == [(2,)]
    assert stored(db, "SELECT exit_status, success FROM test_runs") == [(1, False)]
    workers_seen = {w for (w,) in stored(db, "SELECT DISTINCT worker FROM hardware_compatibility")}
    if workers == "0":
        assert workers_seen == {"main"}
    else:  # rows came from workers, and only the controller stored them
        assert workers_seen and workers_seen <= {"gw0", "gw1"}
    assert "hf_abcdefghijklmnop" not in str(stored(db, "SELECT error_message FROM hardware_compatibility"))


def test_the_default_database_is_under_rootdir(suite: pytest.Pytester) -> None:
    suite.runpytest(*BASE_ARGS, "-k", "pipeline")
    assert stored(
        suite.path / ".hfmodels" / "results.duckdb", "SELECT count(*) FROM hardware_compatibility"
    ) == [(2,)]


def test_no_db_stores_nothing_and_json_has_the_tools_format(suite: pytest.Pytester) -> None:
    result = suite.runpytest(*BASE_ARGS, "--hf-no-db", "--hf-json", "out/run.json")
    assert not (suite.path / ".hfmodels").exists()
    result.stdout.fnmatch_lines(["hfmodels: results JSON written to *run.json"])
    data = json.loads((suite.path / "out" / "run.json").read_text())
    assert set(data) == {"results", "examples", "performance", "hardware", "metadata"}
    assert data["results"]["pipeline"]["cpu"]["bert-tiny"]["success"] is True
    assert data["results"]["pipeline"]["cpu"]["bert-tiny"]["average_time"] > 0
    assert data["results"]["onnxruntime"]["cpu"]["bert-tiny"] == {
        "success": False,
        "average_time": None,
        "error_type": "RuntimeError",
    }
    assert [p["batch_size"] for p in data["performance"]["pipeline"]["cpu"]["bert-tiny"]] == [1, 2]
    assert data["metadata"]["command"].startswith("pytest ") and data["metadata"]["run_id"] is None
    assert "hf_abcdefghijklmnop" not in (suite.path / "out" / "run.json").read_text()


def test_a_session_without_model_rows_writes_nothing(suite: pytest.Pytester) -> None:
    result = suite.runpytest(*BASE_ARGS, "-k", "not_a_model")
    result.assert_outcomes(passed=1)
    assert "hfmodels:" not in result.stdout.str()
    assert not (suite.path / ".hfmodels").exists()


def test_a_bad_timeout_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = suite.runpytest(*BASE_ARGS, "--hf-db-timeout", "soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hf-db-timeout*'soon' is not a number of seconds*"])


@dataclass(frozen=True)
class HeldDatabase:
    path: Path
    holder: subprocess.Popen[str]

    def release(self) -> None:
        release(self.holder)


@pytest.fixture
def held_database(suite: pytest.Pytester) -> Iterator[HeldDatabase]:
    """The suite's database, held open by a second process (DuckDB allows one writing process)."""
    db = suite.path / "held" / "results.duckdb"
    db.parent.mkdir()
    held = HeldDatabase(db, hold_database(db))
    yield held
    held.release()


def test_a_locked_database_spills_and_db_ingest_recovers_every_row(
    suite: pytest.Pytester, held_database: HeldDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = held_database.path
    result = suite.runpytest(*BASE_ARGS, "-n", "2", f"--hf-db={db}", "--hf-db-timeout=0.3")
    result.assert_outcomes(passed=3, failed=2, skipped=2)
    result.stdout.fnmatch_lines(["hfmodels: WARNING: 6 results spilled to *spill-*.parquet*locked*"])
    [spill] = list(db.parent.glob("spill-*.parquet"))

    held_database.release()
    monkeypatch.setattr(cli, "COMMAND_MODULES", tuple(dict.fromkeys((*cli.COMMAND_MODULES, "db_cmd"))))
    assert cli.main(["db", "ingest", "--db", str(db), str(spill)]) == 0
    assert not spill.exists()
    assert stored(db, "SELECT count(*) FROM hardware_compatibility") == [(6,)]
    assert stored(db, "SELECT count(*) FROM performance_results") == [(2,)]
    assert stored(db, "SELECT command_line LIKE 'pytest %--hf-db-timeout=0.3%' FROM test_runs") == [(True,)]
