"""A run report as Markdown, for CI logs, pull-request comments and terminals.

The same sections as the HTML page, in text: summary, what changed, compatibility, trends, scaling,
generation, the performance table and what failed. `full=False` is what a person reads in one
screen: the summary, what changed, and per model its matrix row and its fastest runtime.

Cell text is escaped: error messages come from anywhere, and Markdown viewers render inline HTML
and split table cells on a raw pipe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pytest_hfmodels.report.model import (
    CaseChange,
    RunChanges,
    RunReport,
    Trend,
    model_label,
    plural,
    short_name,
    speedup_text,
)

#: lines of a list a one-screen summary shows before it says how many more there are
SCREEN_ROWS = 5
#: models the one-screen summary lists
SCREEN_MODELS = 25
_SPARKS = "▁▂▃▄▅▆▇█"


def _md(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    # Markdown viewers render inline HTML, and error messages are not ours to trust.
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    return lines


def _more(shown: int, every: int, what: str) -> list[str]:
    return [] if shown >= every else ["", f"... and {every - shown} more {what} (`hfmodels report --full`)"]


def render_markdown(report: RunReport, charts: Mapping[str, str] | None = None, *, full: bool = True) -> str:
    """The report as Markdown; `charts` maps a chart id (`plots.all_charts`) to a file beside the report."""
    charts = charts or {}
    lines = _header(report)
    lines += _summary(report, full)
    if report.changes is not None:
        lines += _changes(report.changes, full)
    if not full:
        lines += _models_screen(report)
        lines += ["", "Full report: `hfmodels report --full`, or `--format html` for the page."]
        return "\n".join(lines) + "\n"
    lines += _fastest(report)
    lines += _compatibility(report, charts)
    lines += _trends(report, charts)
    lines += _scaling(report, charts)
    lines += _generation(report, charts)
    lines += _performance(report)
    lines += _failures(report)
    return "\n".join(lines) + "\n"


def _header(report: RunReport) -> list[str]:
    run = report.run
    versions = ", ".join(f"{name} {version}" for name, version in run.package_versions.items() if version)
    state = "no failures" if run.success else "with failures"
    command = (run.command_line or "").replace("`", "'")  # a backtick would end the code span
    if run.interrupted:
        state += ", interrupted (stored from the journal of a killed session)"
    return [
        f"# pytest-hfmodels: run {run.run_id}",
        "",
        f"- started: {run.started_at:%Y-%m-%d %H:%M:%S} UTC, host: {_md(run.host)}, "
        f"commit: {_md(run.git_commit) or 'none'}, {state}",
        f"- command: `{command}`",
        f"- versions: {versions}",
    ]


def _summary(report: RunReport, full: bool) -> list[str]:
    passed, failed, skipped = report.totals
    lines = [
        "",
        "## Summary",
        "",
        f"{passed + failed + skipped} cases: {passed} passed, {failed} failed, {skipped} skipped "
        f"(run {report.run.run_id}; {plural(report.runs_stored, 'run')} stored).",
        "",
    ]
    lines += _table(
        ("mode", "hardware", "pass", "fail", "skip"),
        [(c.mode, c.hardware, c.passed, c.failed, c.skipped) for c in report.status_counts],
    )
    classes = report.failure_classes
    if classes:
        shown = classes if full else classes[:SCREEN_ROWS]
        lines += ["", "### Failures by class", ""]
        lines += _table(
            ("class", "cases", "suggested fix", "first case"),
            [(c.error_class, c.cases, c.suggested_fix, c.example_case) for c in shown],
        )
        lines += _more(len(shown), len(classes), "failure classes")
    return lines


def _fastest(report: RunReport) -> list[str]:
    lines = ["", "### Fastest runtime per model", ""]
    if not report.fastest:
        return [*lines, "No case of this run measured a forward call."]
    lines += [
        "Each mode's p50 at a batch is at the shortest input it measured; the speed-up is over "
        "from_pretrained, on the lengths both measured (blank where they share none).",
        "",
    ]
    rows = [
        (
            short_name(f.model_id, f.model_key),
            f.hardware,
            f.batch_size,
            speedup_text(f),
            f.p50_ms,
            f.baseline_p50_ms,
            f.modes,
        )
        for f in report.fastest
    ]
    return lines + _table(
        ("model", "hardware", "batch", "fastest", "p50 ms", "from_pretrained ms", "modes"), rows
    )


def _change_rows(changes: Sequence[CaseChange]) -> list[tuple[object, ...]]:
    return [(c.case.label, c.before_ms, c.after_ms, f"{c.delta_pct:+.1f}%") for c in changes]


def _changes(changes: RunChanges, full: bool) -> list[str]:
    base = changes.baseline
    lines = [
        "",
        "## What changed",
        "",
        f"Against run {base.run_id} ({base.started_at:%Y-%m-%d %H:%M}, {base.commit}), "
        f"{changes.chosen}: "
        f"{plural(changes.compared, 'case')} measured in both, {len(changes.regressions)} slower and "
        f"{len(changes.improvements)} faster by more than {changes.threshold_pct:g}% (p50); "
        f"{changes.only_before} only in run {base.run_id}, {changes.only_after} only in this run; "
        f"{plural(len(changes.status_changes), 'matrix cell')} changed status.",
    ]
    limit = None if full else SCREEN_ROWS
    for title, moved in (("Regressions", changes.regressions), ("Improvements", changes.improvements)):
        if moved:
            shown = moved[:limit]
            lines += ["", f"### {title}", ""]
            lines += _table(("case", f"run {base.run_id} p50 ms", "p50 ms", "change"), _change_rows(shown))
            lines += _more(len(shown), len(moved), title.lower())
    if changes.status_changes:
        shown_status = changes.status_changes[:limit]
        lines += ["", "### Status changes", ""]
        lines += _table(
            ("model", "mode / hardware", f"run {base.run_id}", "now"),
            [
                (short_name(s.model_id, s.model_key), f"{s.mode} / {s.hardware}", s.before, s.after)
                for s in shown_status
            ],
        )
        lines += _more(len(shown_status), len(changes.status_changes), "status changes")
    return lines


def _status_text(report: RunReport, model_id: str, mode: str, hardware: str) -> str:
    cell = report.cell(model_id, mode, hardware)
    if cell is None:
        return ""
    return cell.status + (f" ({cell.error_class})" if cell.status == "fail" and cell.error_class else "")


def _models_screen(report: RunReport) -> list[str]:
    """One line per model: its matrix row and its fastest runtime at each batch."""
    columns = report.columns
    models = report.models[:SCREEN_MODELS]
    lines = ["", "## Models", ""]
    header = [
        "model",
        *(f"{mode} / {hardware}" for mode, hardware in columns),
        "fastest (speed-up over from_pretrained)",
    ]
    rows = []
    for model_id, model_key in models:
        fastest = "; ".join(
            f"b{f.batch_size} {speedup_text(f)}" if f.batch_size is not None else speedup_text(f)
            for f in report.fastest_of(model_id)
        )
        statuses = [_status_text(report, model_id, mode, hardware) for mode, hardware in columns]
        rows.append((short_name(model_id, model_key), *statuses, fastest))
    return lines + _table(header, rows) + _more(len(models), len(report.models), "models")


def _compatibility(report: RunReport, charts: Mapping[str, str]) -> list[str]:
    modes = report.modes
    lines = ["", "## Compatibility", "", "### Families x modes", ""]
    families = sorted({cell.family for cell in report.family_modes})
    lines += _table(
        ("family", *modes),
        [
            (family, *(v.summary if (v := report.family_mode(family, mode)) else "" for mode in modes))
            for family in families
        ],
    )
    reasons = [(c, reason) for c in report.family_modes for reason in c.reasons]
    if reasons:
        lines.append("")
        lines += [f"- {_md(c.family)} x {_md(c.mode)}: {_md(reason)}" for c, reason in reasons]
    columns = report.columns
    lines += ["", "### Models x modes", ""]
    lines += _table(
        ("model", *(f"{mode} / {hardware}" for mode, hardware in columns)),
        [
            (model_label(model_id, key), *(_status_text(report, model_id, m, h) for m, h in columns))
            for model_id, key in report.models
        ],
    )
    if "matrix" in charts:
        lines += ["", f"![compatibility matrix]({charts['matrix']})"]
    return lines


def sparkline(values: Sequence[float | None]) -> str:
    """'▁▂▅█': each value's height between the smallest and largest; a space where none was measured."""
    measured = [v for v in values if v is not None]
    if not measured:
        return ""
    low, high = min(measured), max(measured)
    span = high - low or 1.0
    return "".join(
        " " if v is None else _SPARKS[round((v - low) / span * (len(_SPARKS) - 1))] for v in values
    )


def _trend_row(trend: Trend) -> tuple[object, ...]:
    values = [p.p50_ms for p in trend.points]
    first, last = trend.points[0], trend.points[-1]
    started = ""
    if trend.regression_start is not None:
        point = trend.points[trend.regression_start]
        started = f"run {point.run_id} ({point.git_commit[:10] if point.git_commit else 'no commit'})"
    return (
        trend.case.label,
        trend.change,
        f"{first.run_id}..{last.run_id} ({len(trend.points)})",
        sparkline(values),
        first.p50_ms,
        last.p50_ms,
        started,
    )


def _trends(report: RunReport, charts: Mapping[str, str]) -> list[str]:
    if not report.trends:
        return []
    lines = [
        "",
        "## Trends",
        "",
        f"p50 over the last {report.history} runs that measured each case: what changed first; "
        "a regression starts where the p50 rose past the threshold and stayed there.",
        "",
    ]
    lines += _table(
        ("case", "shown because", "runs", "p50 trend", "first p50 ms", "last p50 ms", "regression started"),
        [_trend_row(trend) for trend in report.trends],
    )
    images = [
        f"![trend of {_md(trend.case.label)}]({charts[f'trend/{index}']})"
        for index, trend in enumerate(report.trends)
        if f"trend/{index}" in charts
    ]
    if images:
        lines += ["", *images]
    return lines


def _scaling(report: RunReport, charts: Mapping[str, str]) -> list[str]:
    batches = sorted({p.x for p in report.scaling if p.axis == "batch"})
    if len(batches) < 2:
        return []
    lines = ["", "## Scaling", "", "p50 ms and items/s by batch size, at each series' smallest length:", ""]
    by_series: dict[tuple[str, str, str], dict[float, tuple[float | None, float | None]]] = {}
    for p in report.scaling:
        if p.axis == "batch":
            series = (short_name(p.model_id, p.model_key), p.mode, p.hardware)
            by_series.setdefault(series, {})[p.x] = (p.p50_ms, p.throughput_per_s)
    header = [
        "model",
        "mode / hardware",
        *(f"b{b:g} ms" for b in batches),
        *(f"b{b:g} items/s" for b in batches),
    ]
    rows = []
    for (model, mode, hardware), values in by_series.items():
        p50s = [values.get(b, (None, None))[0] for b in batches]
        throughputs = [values.get(b, (None, None))[1] for b in batches]
        rows.append((model, f"{mode} / {hardware}", *p50s, *throughputs))
    lines += _table(header, rows)
    lines += _more(len({r[0] for r in rows}), report.scaled_models, "models")
    images = sorted((key, name) for key, name in charts.items() if key.startswith("scaling/"))
    if images:
        lines.append("")
        lines += [f"![{_md(key.split('/')[1])} scaling]({name})" for key, name in images]
    return lines


def _generation(report: RunReport, charts: Mapping[str, str]) -> list[str]:
    if not report.generation:
        return []
    lines = ["", "## Generation", ""]
    lines += _table(
        ("model", "mode", "hardware", "batch", "prompt", "new", "TTFT ms", "TPOT ms", "TPOT p90 ms",
         "decode tok/s", "prefill tok/s", "p50 ms", "same ids as from_pretrained", "output"),
        [
            (short_name(g.model_id, g.model_key), g.mode, g.hardware, g.batch_size, g.sequence_length,
             g.new_tokens, g.ttft_ms, g.tpot_ms, g.tpot_p90_ms, g.decode_tokens_per_s, g.prefill_tokens_per_s,
             g.latency_p50_ms, g.same_as_baseline, g.output_sample)
            for g in report.generation
        ],
    )  # fmt: skip
    images = sorted((key, name) for key, name in charts.items() if key.startswith("generation/"))
    if images:
        lines += ["", *(f"![generation]({name})" for _, name in images)]
    return lines


def _performance(report: RunReport) -> list[str]:
    table = report.table
    lines = ["", "## Performance", ""]
    if not table.row_count:
        return [*lines, "No case of this run measured anything."]
    if table.markdown_rows is None:
        return [*lines, f"{table.row_count} rows: `hfmodels report --full` lists them."]
    header = [column.name for column in table.columns]
    return [*lines, "| " + " | ".join(header) + " |", "|---" * len(header) + "|", table.markdown_rows]


def _failures(report: RunReport) -> list[str]:
    problems = [c for c in report.cells if c.status != "pass" and (c.error_class or c.error_message)]
    if not problems:
        return []
    lines = ["", "## Failures and skips", ""]
    for c in problems:
        fix = f" Fix: {_md(c.suggested_fix)}" if c.suggested_fix else ""
        lines.append(
            f"- {_md(model_label(c.model_id, c.model_key))} {c.mode} / {c.hardware}: {_md(c.reason)}{fix}"
        )
    return lines
