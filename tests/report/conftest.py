"""The three-run database the report tests read (built once: reports only read it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.runs import build_history


@pytest.fixture(scope="session")
def history_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """A database of three runs of one selection (the third slower on one case and failing on
    another), and the run ids."""
    db = tmp_path_factory.mktemp("history") / "results.duckdb"
    return db, build_history(db)
