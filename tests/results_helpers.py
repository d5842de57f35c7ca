"""Shared by the results tests: result rows to store, and a second process holding a database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytest_hfmodels.results import Measurement, ResultRow

_HOLD = "\n".join(
    [
        "import duckdb, sys",
        "con = duckdb.connect(sys.argv[1])",
        "print('held', flush=True)",
        "sys.stdin.readline()",
    ]
)


def make_row(
    case: str,
    *,
    status: str = "pass",
    mode: str = "pipeline",
    model: str = "org/bert-tiny",
    hardware: str = "cpu",
    measurement: Measurement | None = None,
    **extra: object,
) -> ResultRow:
    """A bert-family row; `extra` overrides any other field."""
    fields: dict[str, object] = dict(
        nodeid=f"test_models.py::test_model[{case}]",
        case_id=case,
        model_key=model.split("/")[-1],
        model_id=model,
        family="bert",
        task="fill-mask",
        source="tiny",
        weights="random",
        model_type="bert",
        architecture="BertForMaskedLM",
        mode=mode,
        hardware=hardware,
        device_name="Test CPU",
        status=status,
        error_class=None,
        error_message=None,
        suggested_fix=None,
        duration_s=0.25,
        worker="main",
        parameters=12345,
        measurement=measurement or Measurement(),
    )
    fields.update(extra)
    return ResultRow(**fields)  # type: ignore[arg-type]


def hold_database(path: Path) -> subprocess.Popen[str]:
    """A second process holding `path` open (DuckDB's one-writer-process lock) until released."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    """Let the holder exit (idempotent)."""
    assert holder.stdin is not None
    if not holder.stdin.closed:
        holder.stdin.close()
    holder.wait(timeout=30)
