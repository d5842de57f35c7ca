"""One self-contained HTML file for a run: inline CSS, plots as base64 PNG, no external links.

A report is mailed, attached to CI artifacts and opened offline, so it must not reference any
other file or URL. Every value from the database is HTML-escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from html import escape

from pytest_hfmodels.report.model import PERFORMANCE_COLUMNS, RunReport, model_label, performance_values

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.pass { background: #d8f0dc; } td.fail { background: #f6d3d0; } td.skip { background: #eee; }
code { background: #f4f4f4; padding: 0 0.3em; }
img { max-width: 100%; }
"""


def _cell(value: object) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, float):
        return f'<td class="num">{value:.3f}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    return f"<td>{escape(str(value))}</td>"


def _family_modes(report: RunReport) -> list[str]:
    """The family x mode table, then why cases were skipped or failed there."""
    modes = report.modes
    parts = [
        "<h2>Families x modes</h2>",
        "<table><tr><th>family</th>" + "".join(f"<th>{escape(mode)}</th>" for mode in modes) + "</tr>",
    ]
    for family in sorted({cell.family for cell in report.family_modes}):
        row = [f"<tr><td>{escape(family)}</td>"]
        for mode in modes:
            cell = report.family_mode(family, mode)
            row.append(
                "<td></td>"
                if cell is None
                else f'<td class="{cell.status}" title="{escape(" | ".join(cell.reasons), quote=True)}">'
                f"{escape(cell.summary)}</td>"
            )
        parts.append("".join(row) + "</tr>")
    parts.append("</table>")
    reasons = [
        f"<li>{escape(f'{c.family} x {c.mode}: {r}')}</li>" for c in report.family_modes for r in c.reasons
    ]
    if reasons:
        parts += ["<ul>", *reasons, "</ul>"]
    return parts


def render_html(report: RunReport, images: Mapping[str, bytes]) -> str:
    """The report as one HTML document; `images` maps a title to PNG bytes."""
    run = report.run
    versions = ", ".join(f"{name} {version}" for name, version in run.package_versions.items() if version)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>pytest-hfmodels run {run.run_id}</title><style>{_STYLE}</style></head><body>",
        f"<h1>pytest-hfmodels: run {run.run_id}</h1>",
        "<ul>",
        f"<li>started {run.started_at:%Y-%m-%d %H:%M:%S} UTC on {escape(run.host or '')}, "
        f"commit {escape(run.git_commit or 'none')}, "
        f"{'no failures' if run.success else 'with failures'}</li>",
        f"<li>command: <code>{escape(run.command_line or '')}</code></li>",
        f"<li>versions: {escape(versions)}</li>",
        "</ul>",
        *_family_modes(report),
        "<h2>Compatibility</h2>",
        "<table><tr><th>model</th>"
        + "".join(f"<th>{escape(mode)} / {escape(hardware)}</th>" for mode, hardware in report.columns)
        + "</tr>",
    ]
    for model_id, model_key in report.models:
        row = [f"<tr><td>{escape(model_label(model_id, model_key))}</td>"]
        for mode, hardware in report.columns:
            cell = report.cell(model_id, mode, hardware)
            if cell is None:
                row.append("<td></td>")
                continue
            title = escape(f"{cell.error_class or ''}: {cell.error_message or ''}", quote=True)
            row.append(f'<td class="{cell.status}" title="{title}">{cell.status}</td>')
        parts.append("".join(row) + "</tr>")
    parts.append("</table><h2>Performance</h2>")
    if report.performance:
        header = PERFORMANCE_COLUMNS
        parts.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>")
        for p in report.performance:
            values = performance_values(p)
            parts.append("<tr>" + "".join(_cell(v) for v in values) + "</tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No case of this run measured anything.</p>")
    problems = [c for c in report.cells if c.status != "pass" and (c.error_class or c.error_message)]
    if problems:
        parts.append("<h2>Failures and skips</h2><ul>")
        for c in problems:
            fix = f" Fix: {escape(c.suggested_fix)}" if c.suggested_fix else ""
            where = f"{model_label(c.model_id, c.model_key)} {c.mode} / {c.hardware}"
            parts.append(f"<li>{escape(where)}: {escape(c.reason)}{fix}</li>")
        parts.append("</ul>")
    for title, png in images.items():
        encoded = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<h2>{escape(title)}</h2><img alt="{escape(title, quote=True)}" '
            f'src="data:image/png;base64,{encoded}">'
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
