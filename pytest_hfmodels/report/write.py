"""Writing a run's report: Markdown or one HTML page, its plots and the compatibility matrix JSON.

The only module that imports the renderers (`markdown`, `html`, `plots`), so they depend on the
report's values and never on each other or on the database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.report.html import render_html
from pytest_hfmodels.report.markdown import render_markdown
from pytest_hfmodels.report.model import RunReport
from pytest_hfmodels.report.plots import latency_png, matrix_png
from pytest_hfmodels.report.queries import load_run_report


def compatibility_json(report: RunReport) -> dict[str, Any]:
    """hardware_compatibility_matrix.json: per model, per mode and device, the verdict; and per
    family and mode, the case counts and why cases were skipped or failed."""
    models: dict[str, Any] = {}
    for cell in sorted(report.cells, key=lambda c: (c.model_id, c.mode, c.hardware)):
        entry = models.setdefault(cell.model_id, {"model_key": cell.model_key, "modes": {}})
        entry["modes"].setdefault(cell.mode, {})[cell.hardware] = {
            "status": cell.status,
            "passed": cell.passed,
            "failed": cell.failed,
            "skipped": cell.skipped,
            "error_class": cell.error_class,
            "suggested_fix": cell.suggested_fix,
        }
    families: dict[str, Any] = {}
    for family_mode in report.family_modes:
        families.setdefault(family_mode.family, {})[family_mode.mode] = {
            "status": family_mode.status,
            "passed": family_mode.passed,
            "failed": family_mode.failed,
            "skipped": family_mode.skipped,
            "reasons": list(family_mode.reasons),
        }
    return {
        "run_id": report.run.run_id,
        "started_at": report.run.started_at.isoformat(),
        "host": report.run.host,
        "models": models,
        "families": families,
    }


def write_report(
    db_path: Path, out_dir: Path, *, run_id: int | None = None, fmt: str = "markdown"
) -> list[Path]:
    """Write the report (report.md or report.html), its plots and the matrix JSON; returns the paths."""
    if fmt not in ("markdown", "html"):
        raise ResultsError(f"unknown report format {fmt!r} (markdown or html)")
    report = load_run_report(db_path, run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {
        "p50 latency": ("latency_p50.png", latency_png(report)),
        "compatibility matrix": ("compatibility_matrix.png", matrix_png(report)),
    }
    written: list[Path] = []
    matrix_path = out_dir / "hardware_compatibility_matrix.json"
    matrix_path.write_text(json.dumps(compatibility_json(report), indent=2) + "\n", encoding="utf-8")
    written.append(matrix_path)
    if fmt == "html":
        html_path = out_dir / "report.html"
        html_path.write_text(
            render_html(report, {t: png for t, (_, png) in images.items() if png}), encoding="utf-8"
        )
        return [*written, html_path]
    for name, png in images.values():
        if png:
            (out_dir / name).write_bytes(png)
            written.append(out_dir / name)
    markdown_path = out_dir / "report.md"
    markdown_path.write_text(
        render_markdown(report, {t: n for t, (n, png) in images.items() if png}), encoding="utf-8"
    )
    return [*written, markdown_path]
