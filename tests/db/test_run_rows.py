"""A run's rows converted to Arrow as they arrive (`RunRows`) give the table `rows_table` gives of
the same rows at the end: one row per case, the last one, in case id order, secrets scrubbed."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pytest_hfmodels.db.environment import HF_TOKEN_PATTERN
from pytest_hfmodels.db.spill import RUN_BATCH_ROWS, RUN_CHUNK_ROWS, RunRows, rows_table
from pytest_hfmodels.db.store import store_run
from tests.db.test_store import environment
from tests.results_helpers import make_row


def _arrivals(count: int) -> list:
    """`count` cases in a shuffled order, then second rows for cases converted long ago and for
    cases still pending (as a rerun or a teardown failure gives), and one case three times."""
    order = [(i * 7919) % count for i in range(count)]  # every case once, not in id order
    rows = [make_row(f"case-{i:05d}", duration_s=1.0) for i in order]
    again = [*range(0, count, 997), count - 1, count - 2]  # early batches, and the pending tail
    rows += [make_row(f"case-{i:05d}", status="fail", duration_s=2.0) for i in again]
    rows.append(make_row("case-00000", status="skip"))
    return rows


@pytest.mark.parametrize(
    "count", [10, RUN_BATCH_ROWS, 2 * RUN_BATCH_ROWS + 123, RUN_CHUNK_ROWS + 2 * RUN_BATCH_ROWS + 9]
)
def test_rows_converted_as_they_arrive_make_the_table_of_the_last_rows(count: int) -> None:
    arrivals = _arrivals(count)
    run_rows = RunRows()
    for row in arrivals:
        run_rows.put(row)
    last = {row.case_id: row for row in arrivals}
    assert len(run_rows) == count == len(last)
    expected = rows_table(sorted(last.values(), key=lambda row: row.case_id))
    table = run_rows.table().sort_by("case_id")  # stored in no particular order
    assert table.equals(expected)
    assert table.column("status")[0].as_py() == "skip"  # case-00000's third row


def test_converted_batches_are_joined_into_chunks_while_the_run_goes() -> None:
    run_rows = RunRows()
    for i in range(RUN_CHUNK_ROWS + RUN_BATCH_ROWS + 1):
        run_rows.put(make_row(f"c{i:05d}"))
    chunks = [len(chunk) for chunk in run_rows.table().column("case_id").chunks]
    assert chunks == [RUN_CHUNK_ROWS, RUN_BATCH_ROWS, 1]


def test_a_token_in_a_row_is_scrubbed_in_every_batch() -> None:
    token = "hf_" + "a" * 34
    assert HF_TOKEN_PATTERN.fullmatch(token)
    run_rows = RunRows()
    for i in range(RUN_BATCH_ROWS + 5):  # one in a converted batch, one pending
        leaky = i in (3, RUN_BATCH_ROWS + 2)
        run_rows.put(make_row(f"c{i:05d}", error_message=f"401 with {token}" if leaky else None))
    messages = [m for m in run_rows.table().column("error_message").to_pylist() if m]
    assert len(messages) == 2 and not any(token in m for m in messages)


def test_the_recorder_path_stores_the_rows_it_was_given(tmp_path: Path) -> None:
    db = tmp_path / "results.duckdb"
    arrivals = _arrivals(RUN_BATCH_ROWS + 50)
    run_rows = RunRows()
    for row in arrivals:
        run_rows.put(row)
    stored = store_run(db, environment(), run_rows)
    assert stored.run_id is not None and stored.row_count == RUN_BATCH_ROWS + 50
    with duckdb.connect(str(db), read_only=True) as con:
        got = con.execute(
            "SELECT count(*), count(DISTINCT case_id), count_if(status = 'fail') FROM hardware_compatibility"
        ).fetchone()
    fails = sum(1 for row in {row.case_id: row for row in arrivals}.values() if row.status == "fail")
    assert got == (RUN_BATCH_ROWS + 50, RUN_BATCH_ROWS + 50, fails)
