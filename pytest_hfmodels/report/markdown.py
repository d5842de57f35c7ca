"""A run report as Markdown: the matrix, the timings and what failed, with plots beside it.

Cell text is escaped: error messages come from anywhere, and Markdown viewers render inline HTML
and split table cells on a raw pipe.
"""

from __future__ import annotations

from collections.abc import Mapping

from pytest_hfmodels.report.model import PERFORMANCE_COLUMNS, RunReport, model_label, performance_values


def _md(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    # Markdown viewers render inline HTML, and error messages are not ours to trust.
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: RunReport, images: Mapping[str, str] | None = None) -> str:
    """The report as Markdown; `images` maps a title to a file name placed beside the report."""
    run = report.run
    versions = ", ".join(f"{name} {version}" for name, version in run.package_versions.items() if version)
    lines = [
        f"# pytest-hfmodels: run {run.run_id}",
        "",
        f"- started: {run.started_at:%Y-%m-%d %H:%M:%S} UTC, host: {_md(run.host)}, "
        f"commit: {_md(run.git_commit) or 'none'}, {'no failures' if run.success else 'with failures'}",
        f"- command: `{run.command_line or ''}`",
        f"- versions: {versions}",
        "",
        "## Families x modes",
        "",
    ]
    modes = report.modes
    families = sorted({cell.family for cell in report.family_modes})
    lines.append("| family | " + " | ".join(modes) + " |")
    lines.append("|---" * (len(modes) + 1) + "|")
    for family in families:
        verdicts = [report.family_mode(family, mode) for mode in modes]
        lines.append(f"| {_md(family)} | " + " | ".join(_md(v.summary if v else "") for v in verdicts) + " |")
    reasons = [(c, reason) for c in report.family_modes for reason in c.reasons]
    if reasons:
        lines.append("")
        lines += [f"- {_md(c.family)} x {_md(c.mode)}: {_md(reason)}" for c, reason in reasons]
    lines += ["", "## Compatibility", ""]
    columns = report.columns
    lines.append("| model | " + " | ".join(f"{mode} / {hardware}" for mode, hardware in columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
    for model_id, model_key in report.models:
        cells = [report.cell(model_id, mode, hardware) for mode, hardware in columns]
        texts = [
            ""
            if c is None
            else c.status + (f" ({c.error_class})" if c.status == "fail" and c.error_class else "")
            for c in cells
        ]
        lines.append(
            f"| {_md(model_label(model_id, model_key))} | " + " | ".join(_md(t) for t in texts) + " |"
        )
    lines += ["", "## Performance", ""]
    if report.performance:
        header = PERFORMANCE_COLUMNS
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|---" * len(header) + "|")
        for p in report.performance:
            values = performance_values(p)
            lines.append("| " + " | ".join(_md(v) for v in values) + " |")
    else:
        lines.append("No case of this run measured anything.")
    problems = [c for c in report.cells if c.status != "pass" and (c.error_class or c.error_message)]
    if problems:
        lines += ["", "## Failures and skips", ""]
        for c in problems:
            fix = f" Fix: {_md(c.suggested_fix)}" if c.suggested_fix else ""
            lines.append(
                f"- {_md(model_label(c.model_id, c.model_key))} {c.mode} / {c.hardware}: {_md(c.reason)}{fix}"
            )
    for title, name in (images or {}).items():
        lines += ["", f"![{title}]({name})"]
    return "\n".join(lines) + "\n"
