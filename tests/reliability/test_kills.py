"""`kill -9` at several points of a real run: before any row, after 3 of 4 cases, during the store.

Each run is a real pytest process on the generated suite (bert-tiny, from_pretrained, four batch
sizes). A small plugin in the run's folder holds the controller still at the chosen point so the kill
lands there, not wherever the scheduler happens to be; the rows, the journal and DuckDB are real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pytest_hfmodels.db.environment import RunEnvironment
from pytest_hfmodels.db.journal import RunJournal, pending_journals, read_journal, recover_journals
from pytest_hfmodels.results import Measurement, ResultRow
from tests.helpers import BERT_ONE_CASE, pytest_argv
from tests.results_helpers import make_row

pytestmark = pytest.mark.slow  # real pytest processes on a real tiny model

#: four quick bert-tiny cases, checked and not timed (the later --hf-batch-sizes wins)
CASES = (*BERT_ONE_CASE, "--hf-batch-sizes=1,2,3,4")

#: a plugin (-p holding) that holds the controller still once `HOLD_AFTER` cases have reported,
#: after the recorder saw them (or, with 0, once collected)
HOLDING_PLUGIN = """
import os
import time
from pathlib import Path

import pytest

seen = set()


def hold():
    Path(os.environ["HOLD_MARKER"]).write_text(str(os.getpid()))
    time.sleep(600)


def pytest_collection_finish(session):
    if os.environ["HOLD_AFTER"] == "0":
        hold()


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    if report.when != "teardown":
        return
    seen.add(report.nodeid)
    if len(seen) == int(os.environ["HOLD_AFTER"]):
        hold()
"""


def start_run(project: Path, db: Path, hold_after: int) -> subprocess.Popen[str]:
    (project / "holding.py").write_text(HOLDING_PLUGIN)
    env = {
        **os.environ,
        "HOLD_AFTER": str(hold_after),
        "HOLD_MARKER": str(project / "held"),
        "PYTHONPATH": os.pathsep.join(filter(None, (str(project), os.environ.get("PYTHONPATH")))),
    }
    return subprocess.Popen(
        pytest_argv(*CASES, f"--hf-db={db}", "-p", "holding"),
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_when_held(process: subprocess.Popen[str], marker: Path) -> None:
    deadline = time.monotonic() + 300
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(
                f"the run ended before it was held:\n{process.stdout.read() if process.stdout else ''}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the run was never held")
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def runs(db: Path) -> list[tuple[int, bool, int]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "select r.run_id, r.interrupted, count(p.case_id) from test_runs r "
            "left join performance_results p using (run_id) group by all order by r.run_id"
        ).fetchall()


def test_kill_after_3_of_4_cases_loses_none_of_the_3(tmp_path: Path) -> None:
    db = tmp_path / "results.duckdb"
    process = start_run(tmp_path, db, hold_after=3)
    kill_when_held(process, tmp_path / "held")
    (journal,) = pending_journals(db)
    environment, rows = read_journal(journal)
    assert len(rows) == 3 and {r.status for r in rows} == {"pass"}
    assert not db.exists() or runs(db) == []  # nothing was stored: the kill came first

    # The next session that stores a run stores the killed one first, as interrupted.
    done = subprocess.run(
        pytest_argv(*CASES, f"--hf-db={db}"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 results of a killed session stored as interrupted run 1" in done.stdout
    assert runs(db) == [(1, True, 3), (2, False, 4)]
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute("select run_uid from test_runs where run_id = 1").fetchone()
    assert stored == (environment.run_uid,) and pending_journals(db) == []


def test_hfmodels_db_ingest_with_no_file_stores_a_killed_sessions_journal(tmp_path: Path) -> None:
    db = tmp_path / "results.duckdb"
    process = start_run(tmp_path, db, hold_after=2)
    kill_when_held(process, tmp_path / "held")
    (journal,) = pending_journals(db)
    done = subprocess.run(
        [sys.executable, "-m", "pytest_hfmodels.cli", "db", "ingest", "--db", str(db)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{journal}: 2 rows of a killed session, now interrupted run 1"
    assert runs(db) == [(1, True, 2)] and pending_journals(db) == []
    again = subprocess.run(
        [sys.executable, "-m", "pytest_hfmodels.cli", "db", "ingest", "--db", str(db)],
        capture_output=True,
        text=True,
    )
    assert again.stdout.strip() == f"nothing to ingest beside {db}"


def test_kill_before_any_case_finished_leaves_nothing_behind(tmp_path: Path) -> None:
    db = tmp_path / "results.duckdb"
    process = start_run(tmp_path, db, hold_after=0)  # held once collected, before the first case
    kill_when_held(process, tmp_path / "held")
    assert pending_journals(db) == [] and not db.exists()  # no row arrived: nothing to keep
    assert recover_journals(db) == []


def test_journal_of_a_live_session_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "results.duckdb"
    journal = RunJournal(db, environment())
    journal.append(row("a"))
    assert recover_journals(db) == []  # its writer holds the lock: not a killed session's
    assert pending_journals(db) == [journal.path]
    journal.close(remove=True)
    assert pending_journals(db) == [] and not Path(str(journal.path) + ".lock").exists()


def test_a_row_cut_short_by_the_kill_is_dropped_the_rest_stored(tmp_path: Path) -> None:
    db = tmp_path / "results.duckdb"
    script = f"""
import os, signal
from pathlib import Path
from tests.reliability.test_kills import environment, row
from pytest_hfmodels.db.journal import RunJournal

journal = RunJournal(Path({str(db)!r}), environment())
for name in ("a", "b"):
    journal.append(row(name))
with journal.path.open("a") as handle:  # the write the kill interrupts
    handle.write('{{"row": {{"case_id": "c", "nodeid"')
os.kill(os.getpid(), signal.SIGKILL)
"""
    killed = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    assert killed.returncode == -signal.SIGKILL
    (recovered,) = recover_journals(db)
    assert recovered.row_count == 2 and runs(db) == [(1, True, 2)]


def test_kill_during_the_store_stores_the_run_once(tmp_path: Path) -> None:
    """A store killed at any point: before the commit the journal stays; after it, the next store
    finds the run by its run_uid and stores nothing twice."""
    db = tmp_path / "results.duckdb"
    journal = RunJournal(db, environment())
    for index in range(20_000):
        journal.append(row(f"case-{index}"))
    journal.close(remove=False)  # as a killed session leaves it: the journal, its lock free
    script = (
        "from pathlib import Path\nfrom pytest_hfmodels.db.journal import recover_journals\n"
        f"recover_journals(Path({str(db)!r}))\n"
    )
    for delay in (0.5, 1.5, 3.0):  # a few points inside the store (imports, migration, insert, commit)
        storing = subprocess.Popen([sys.executable, "-c", script])
        time.sleep(delay)
        storing.send_signal(signal.SIGKILL)
        storing.wait()
    recover_journals(db)  # whatever the kills left, the next store completes it
    assert runs(db) == [(1, True, 20_000)] and pending_journals(db) == []


def environment() -> RunEnvironment:
    return RunEnvironment.capture(["pytest", "--hf-model", "bert-tiny"], [{"label": "cpu"}])


def row(case_id: str) -> ResultRow:
    return make_row(
        case_id,
        measurement=Measurement(batch_size=1, latency_p50_ms=1.0, iterations=1, timer="perf_counter_ns"),
    )
