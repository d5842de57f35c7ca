"""Writing a run's report: Markdown or one HTML page, its charts and the compatibility matrix JSON.

The only module that imports the renderers (`markdown`, `html`, `plots`), so they depend on the
report's values and never on each other or on the database.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.report.compare import DEFAULT_THRESHOLD_PCT
from pytest_hfmodels.report.history import DEFAULT_HISTORY
from pytest_hfmodels.report.html import render_html
from pytest_hfmodels.report.markdown import render_markdown
from pytest_hfmodels.report.model import RunReport
from pytest_hfmodels.report.plots import all_charts
from pytest_hfmodels.report.queries import load_run_report

#: the folder beside report.md holding its charts
CHARTS_FOLDER = "charts"


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


def matrix_json_text(data: dict[str, Any]) -> str:
    """The matrix JSON, one model (and one family) a line: readable, and written by the json module's C
    encoder (indenting makes it use its Python one: a third of a second for 5,000 cells)."""
    lines = ["{"]
    for index, (key, value) in enumerate(data.items()):
        comma = "," if index < len(data) - 1 else ""
        if isinstance(value, dict) and value:
            entries = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
            lines += [f"  {json.dumps(key)}: {{", ",\n".join(entries), f"  }}{comma}"]
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}{comma}")
    return "\n".join([*lines, "}"]) + "\n"


def chart_file(chart_id: str) -> str:
    """'scaling/bert-tiny/0' -> 'scaling-bert-tiny-0.svg': a file name whatever a model key holds."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", chart_id.replace("/", "-")).strip("-") + ".svg"


def write_report(
    db_path: Path,
    out_dir: Path,
    *,
    run_id: int | None = None,
    fmt: str = "markdown",
    baseline: int | None = None,
    history: int = DEFAULT_HISTORY,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
) -> list[Path]:
    """Write the report (report.md with its charts/ folder, or one report.html) and the matrix JSON;
    returns the paths written. `baseline`, `history`, `threshold_pct`: as `load_run_report` takes them."""
    _check_format(fmt)
    report = load_run_report(
        db_path,
        run_id,
        baseline=baseline,
        history=history,
        threshold_pct=threshold_pct,
        table=table_form(fmt),
    )
    return write_files(report, out_dir, fmt)


def _check_format(fmt: str) -> None:
    if fmt not in ("markdown", "html"):
        raise ResultsError(f"unknown report format {fmt!r} (markdown or html)")


def table_form(fmt: str) -> str:
    """The performance table's form a report format needs (`load_run_report`'s `table`)."""
    return "json" if fmt == "html" else "markdown"


def write_files(report: RunReport, out_dir: Path, fmt: str) -> list[Path]:
    """Write a loaded report (its table in `table_form(fmt)`) and the matrix JSON into `out_dir`."""
    _check_format(fmt)
    # The page folds every trend away; a Markdown file shows each chart it names, so it names the
    # trends of changed cases only.
    charts = all_charts(report, every_trend=fmt == "html")
    out_dir.mkdir(parents=True, exist_ok=True)
    matrix_path = out_dir / "hardware_compatibility_matrix.json"
    matrix_path.write_text(matrix_json_text(compatibility_json(report)), encoding="utf-8")
    written = [matrix_path]
    if fmt == "html":
        html_path = out_dir / "report.html"
        html_path.write_text(render_html(report, charts), encoding="utf-8")
        return [*written, html_path]
    files = {chart_id: f"{CHARTS_FOLDER}/{chart_file(chart_id)}" for chart_id in charts}
    if charts:
        (out_dir / CHARTS_FOLDER).mkdir(exist_ok=True)
    for chart_id, chart in charts.items():
        path = out_dir / files[chart_id]
        path.write_text(chart, encoding="utf-8")
        written.append(path)
    markdown_path = out_dir / "report.md"
    markdown_path.write_text(render_markdown(report, files), encoding="utf-8")
    return [*written, markdown_path]
