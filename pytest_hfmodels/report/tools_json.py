"""The per-run JSON of the original verification tools (`--hf-json`), written from a run's rows."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_hfmodels.db.environment import RunEnvironment, scrub_secrets
from pytest_hfmodels.results import ResultRow


def results_json(
    environment: RunEnvironment, rows: Sequence[ResultRow], *, run_id: int | None
) -> dict[str, Any]:
    """The per-run JSON of the original tools: results, output samples (`examples`) and performance by
    mode, device and model."""
    results: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    performance: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    examples: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
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
        if row.output_sample is not None:
            # What the model answered, so a reader sees it works, not only that a check passed.
            examples.setdefault(row.mode, {}).setdefault(row.hardware, {}).setdefault(
                row.model_key, []
            ).append(
                {
                    "case_id": row.case_id,
                    "scenario": row.measurement.scenario or "forward",
                    "batch_size": row.measurement.batch_size,
                    "output": row.output_sample,
                }
            )
    return {
        "results": results,
        "examples": examples,
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
