"""One self-contained HTML page for a run: inline style, SVG charts and script, no external reference.

A report is mailed, attached to CI artifacts and opened offline, so it must not reference any
other file or URL; its Content-Security-Policy forbids every request, so a slip would show as a
blocked request rather than a silent download. Every value from the database is HTML-escaped, and
the JSON the script reads cannot close its <script> element.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape

from pytest_hfmodels.report.model import (
    CaseChange,
    Fastest,
    RunChanges,
    RunReport,
    Trend,
    model_label,
    plural,
    short_name,
    speedup_text,
)
from pytest_hfmodels.report.page_script import ROWS_SHOWN, SCRIPT, STYLE

#: no request of any kind: images are data: URIs, style and script are inline
_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

#: changed cases listed before the rest are folded away
_CHANGES_SHOWN = 10

_SECTIONS = (
    ("summary", "Summary"),
    ("changes", "What changed"),
    ("compatibility", "Compatibility"),
    ("trends", "Trends"),
    ("scaling", "Scaling"),
    ("generation", "Generation"),
    ("performance", "Performance"),
    ("failures", "Failures and skips"),
)


def _cell(value: object, css: str = "", title: str | None = None) -> str:
    classes = css
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text, classes = f"{value:.3f}", f"num {css}".strip()
    elif isinstance(value, int):
        text, classes = str(value), f"num {css}".strip()
    else:
        text = escape(str(value))
    attributes = (f' class="{classes}"' if classes else "") + (
        f' title="{escape(title, quote=True)}"' if title else ""
    )
    return f"<td{attributes}>{text}</td>"


def _table(header: Sequence[str], rows: Sequence[str], table_id: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _script_json(value: object) -> str:
    """JSON for a <script type="application/json">: '<' written as \\u003c, so no '</script>' can end it."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def render_html(report: RunReport, charts: Mapping[str, str]) -> str:
    """The report as one HTML document; `charts` maps a chart id (`plots.all_charts`) to its SVG."""
    run = report.run
    present = {
        "changes": report.changes is not None,
        "trends": bool(report.trends),
        "generation": bool(report.generation),
    }
    present["failures"] = any(c.status != "pass" and (c.error_class or c.error_message) for c in report.cells)
    nav = " ".join(f'<a href="#{key}">{title}</a>' for key, title in _SECTIONS if present.get(key, True))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>pytest-hfmodels run {run.run_id}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>pytest-hfmodels: run {run.run_id}</h1>{_run_lines(report)}<nav>{nav}</nav></header>",
        _summary(report),
    ]
    if report.changes is not None:
        parts.append(_changes(report.changes, _trend_ids(report.trends)))
    parts += [
        _compatibility(report),
        _trends(report, charts),
        _scaling(report, charts),
        _generation(report, charts),
    ]
    parts += [
        _performance(report),
        _failures(report),
        _data(report),
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _run_lines(report: RunReport) -> str:
    run = report.run
    versions = ", ".join(f"{name} {version}" for name, version in run.package_versions.items() if version)
    state = "no failures" if run.success else "with failures"
    if run.interrupted:
        state += ", interrupted (stored from the journal of a killed session)"
    return (
        "<ul>"
        f"<li>started {run.started_at:%Y-%m-%d %H:%M:%S} UTC on {escape(run.host or '')}, "
        f"commit {escape(run.git_commit or 'none')}, {state}</li>"
        f"<li>command: <code>{escape(run.command_line or '')}</code></li>"
        f"<li>versions: {escape(versions)}</li>"
        "</ul>"
    )


def _summary(report: RunReport) -> str:
    passed, failed, skipped = report.totals
    parts = [
        '<section id="summary"><h2>Summary</h2>',
        f'<p class="totals"><span>{passed + failed + skipped} cases</span> '
        f'<span class="pass">{passed} passed</span> <span class="fail">{failed} failed</span> '
        f'<span class="skip">{skipped} skipped</span> '
        f'<span class="note">run {report.run.run_id} of {report.runs_stored} stored</span></p>',
        _table(
            ("mode", "hardware", "pass", "fail", "skip"),
            [
                f"<tr>{_cell(c.mode)}{_cell(c.hardware)}{_cell(c.passed, 'pass' if c.passed else '')}"
                f"{_cell(c.failed, 'fail' if c.failed else '')}{_cell(c.skipped)}</tr>"
                for c in report.status_counts
            ],
            "status-counts",
        ),
    ]
    if report.failure_classes:
        parts.append("<h3>Failures by class</h3>")
        parts.append(
            _table(
                ("class", "cases", "suggested fix", "first case"),
                [
                    f"<tr>{_cell(c.error_class)}{_cell(c.cases)}{_cell(c.suggested_fix)}"
                    f"{_cell(c.example_case, title=c.example_message)}</tr>"
                    for c in report.failure_classes
                ],
                "failure-classes",
            )
        )
    parts.append(_fastest(report))
    parts.append("</section>")
    return "".join(parts)


def _fastest(report: RunReport) -> str:
    if not report.fastest:
        return "<h3>Fastest runtime per model</h3><p>No case of this run measured a forward call.</p>"
    batches = sorted({f.batch_size for f in report.fastest}, key=lambda b: (b is None, b or 0))
    by_row: dict[tuple[str, str | None, str], dict[int | None, Fastest]] = {}
    for f in report.fastest:
        by_row.setdefault((f.model_id, f.model_key, f.hardware), {})[f.batch_size] = f
    rows = []
    for (model_id, model_key, hardware), per_batch in by_row.items():
        cells = [
            f'<td title="{escape(model_id, quote=True)}">{escape(short_name(model_id, model_key))}</td>',
            _cell(hardware),
        ]
        for batch in batches:
            fastest = per_batch.get(batch)
            if fastest is None:
                cells.append("<td></td>")
                continue
            baseline = fastest.baseline_p50_ms
            tip = (
                f"{fastest.mode}: p50 {fastest.p50_ms:.3f} ms"
                + (f"; from_pretrained {baseline:.3f} ms" if baseline is not None else "")
                + f"; {fastest.modes} modes measured"
            )
            cells.append(_cell(speedup_text(fastest), title=tip))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    header = ("model", "hardware", *(f"batch {b}" if b is not None else "batch" for b in batches))
    return (
        "<h3>Fastest runtime per model</h3>"
        '<p class="note">The fastest mode at each batch and its speed-up over from_pretrained (its p50 over '
        "the fastest's, on the lengths both measured); the p50s on hover.</p>"
        + _table(header, rows, "fastest")
    )


def _trend_ids(trends: Sequence[Trend]) -> dict[str, str]:
    return {trend.case.anchor: f"trend-{index}" for index, trend in enumerate(trends)}


def _change_rows(moved: Sequence[CaseChange], css: str, trend_ids: Mapping[str, str]) -> list[str]:
    rows = []
    for change in moved:
        label = escape(change.case.label)
        trend = trend_ids.get(change.case.anchor)
        case = f'<a href="#{trend}">{label}</a>' if trend else label
        rows.append(
            f'<tr><td title="{escape(change.case.model_id, quote=True)}">{case}</td>{_cell(change.before_ms)}'
            f"{_cell(change.after_ms)}{_cell(f'{change.delta_pct:+.1f}%', css)}</tr>"
        )
    return rows


def _changes(changes: RunChanges, trend_ids: Mapping[str, str]) -> str:
    base = changes.baseline
    parts = [
        '<section id="changes"><h2>What changed</h2>',
        f"<p>Against run {base.run_id} ({base.started_at:%Y-%m-%d %H:%M}, {escape(base.commit)}), "
        f"{escape(changes.chosen)}: {plural(changes.compared, 'case')} measured in both, "
        f"<b>{len(changes.regressions)} slower</b> and <b>{len(changes.improvements)} faster</b> "
        "by more than "
        f"{changes.threshold_pct:g}% (p50); {changes.only_before} only in run {base.run_id}, "
        f"{changes.only_after} only in this run; "
        f"{plural(len(changes.status_changes), 'matrix cell')} changed "
        "status.</p>",
    ]
    header = ("case", f"run {base.run_id} p50 ms", "p50 ms", "change")
    if changes.regressions:
        parts.append(
            "<h3>Regressions</h3>"
            + _table(header, _change_rows(changes.regressions, "worse", trend_ids), "regressions")
        )
    if changes.improvements:
        parts.append(
            "<h3>Improvements</h3>"
            + _table(header, _change_rows(changes.improvements, "better", trend_ids), "improvements")
        )
    if changes.status_changes:
        rows = [
            f"<tr>{_cell(short_name(s.model_id, s.model_key), title=s.model_id)}"
            f"{_cell(f'{s.mode} / {s.hardware}')}"
            f"{_cell(s.before, s.before or '')}{_cell(s.after, s.after or '')}</tr>"
            for s in changes.status_changes
        ]
        parts.append(
            "<h3>Status changes</h3>"
            + _table(("model", "mode / hardware", f"run {base.run_id}", "now"), rows, "status-changes")
        )
    parts.append("</section>")
    return "".join(parts)


def _compatibility(report: RunReport) -> str:
    modes = report.modes
    parts = ['<section id="compatibility"><h2>Compatibility</h2><h3>Families x modes</h3>']
    rows = []
    for family in sorted({cell.family for cell in report.family_modes}):
        cells = [_cell(family)]
        for mode in modes:
            cell = report.family_mode(family, mode)
            cells.append(
                "<td></td>" if cell is None else _cell(cell.summary, cell.status, " | ".join(cell.reasons))
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    parts.append(_table(("family", *modes), rows, "families"))
    reasons = [
        f"<li>{escape(f'{c.family} x {c.mode}: {r}')}</li>" for c in report.family_modes for r in c.reasons
    ]
    if reasons:
        parts.append(f"<ul>{''.join(reasons)}</ul>")
    parts.append("<h3>Models x modes</h3>")
    rows = []
    for model_id, model_key in report.models:
        cells = [_cell(short_name(model_id, model_key), title=model_id)]
        for mode, hardware in report.columns:
            verdict = report.cell(model_id, mode, hardware)
            if verdict is None:
                cells.append("<td></td>")
                continue
            tip = (
                f"{verdict.error_class or ''}: {verdict.error_message or ''}"
                if verdict.status != "pass"
                else None
            )
            cells.append(_cell(verdict.status, verdict.status, tip))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    parts.append(_table(("model", *(f"{m} / {h}" for m, h in report.columns)), rows, "matrix"))
    parts.append("</section>")
    return "".join(parts)


def _trends(report: RunReport, charts: Mapping[str, str]) -> str:
    if not report.trends:
        return ""
    parts = [
        '<section id="trends"><h2>Trends</h2>',
        f'<p class="note">p50 over the last {report.history} runs that measured each case (TTFT and TPOT for '
        "generate cases); a red ring where the p50 rose past the threshold. What changed comes first.</p>",
    ]
    for index, trend in enumerate(report.trends):
        started = ""
        if trend.regression_start is not None:
            point = trend.points[trend.regression_start]
            commit = point.git_commit[:10] if point.git_commit else "no commit"
            started = f" — regression started in run {point.run_id} ({escape(commit)})"
        why = f" — {trend.change}" if trend.change else ""
        parts.append(
            f'<details id="trend-{index}" class="trend {trend.change}" '
            f'data-case="{escape(trend.case.anchor, quote=True)}">'
            f"<summary>{escape(trend.case.label)}{why}{started} ({len(trend.points)} runs)</summary>"
            f"{charts.get(f'trend/{index}', '')}</details>"
        )
    parts.append("</section>")
    return "".join(parts)


def _scaling(report: RunReport, charts: Mapping[str, str]) -> str:
    overview = charts.get("latency")
    per_model: dict[str, list[str]] = {}
    for key, chart in charts.items():
        if key.startswith("scaling/"):
            per_model.setdefault(key.split("/")[1], []).append(chart)
    if not overview and not per_model:
        return ""
    parts = ['<section id="scaling"><h2>Scaling</h2>']
    if overview:
        parts.append(f'<div class="charts">{overview}</div>')
    if per_model:
        parts.append(
            '<p class="note">Per model: p50 and items/s along batch sizes (at the smallest length measured) '
            "and along input length (at the smallest batch), one line per mode / device.</p>"
        )
    for index, (model, drawn) in enumerate(per_model.items()):
        opened = " open" if index == 0 else ""
        parts.append(
            f'<details class="scaling"{opened}><summary>{escape(model)}</summary>'
            f'<div class="charts">{"".join(drawn)}</div></details>'
        )
    if report.scaled_models > len(per_model) and per_model:
        parts.append(
            f'<p class="note">First {len(per_model)} of {report.scaled_models} models; '
            "the table holds every one.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _generation(report: RunReport, charts: Mapping[str, str]) -> str:
    if not report.generation:
        return ""
    header = ("model", "mode", "hardware", "batch", "prompt", "new", "TTFT ms", "TPOT ms", "TPOT p90 ms",
              "decode tok/s", "prefill tok/s", "p50 ms", "same ids as from_pretrained", "output")  # fmt: skip
    rows = [
        f"<tr>{_cell(short_name(g.model_id, g.model_key), title=g.model_id)}"
        f"{_cell(g.mode)}{_cell(g.hardware)}"
        f"{_cell(g.batch_size)}{_cell(g.sequence_length)}{_cell(g.new_tokens)}{_cell(g.ttft_ms)}{_cell(g.tpot_ms)}"
        f"{_cell(g.tpot_p90_ms)}{_cell(g.decode_tokens_per_s)}{_cell(g.prefill_tokens_per_s)}{_cell(g.latency_p50_ms)}"
        f"{_cell(g.same_as_baseline, 'fail' if g.same_as_baseline is False else '')}"
        f"{_cell(g.output_sample, 'sample', g.output_sample)}</tr>"
        for g in report.generation
    ]
    drawn = "".join(chart for key, chart in sorted(charts.items()) if key.startswith("generation/"))
    return (
        '<section id="generation"><h2>Generation</h2>'
        + _table(header, rows, "generation-table")
        + (f'<div class="charts">{drawn}</div>' if drawn else "")
        + "</section>"
    )


def _performance(report: RunReport) -> str:
    table = report.table
    if not table.row_count:
        return (
            '<section id="performance"><h2>Performance</h2>'
            "<p>No case of this run measured anything.</p></section>"
        )
    header = "".join(
        f'<th title="{escape(c.title, quote=True)}">{escape(c.name)}</th>' for c in table.columns
    )
    choices = {name: sorted({str(v) for v in values}) for name, values in _choices(report).items()}
    selects = "".join(
        f'<label>{escape(name)} <select data-column="{escape(name, quote=True)}">'
        '<option value="">all</option>'
        + "".join(f'<option value="{escape(v, quote=True)}">{escape(v)}</option>' for v in values)
        + "</select></label>"
        for name, values in choices.items()
    )
    return (
        '<section id="performance"><h2>Performance</h2>'
        '<p class="note">Click a header to sort; filter by text (any text cell or the model id) or by value. '
        f"{ROWS_SHOWN} rows are added at a time. Hover a model for its id.</p>"
        '<div id="perf-controls">'
        '<label>filter <input id="perf-filter" type="search" placeholder="text"></label>'
        f'{selects}<span id="perf-count" class="note"></span></div>'
        "<noscript><p>The table needs JavaScript; report.md (hfmodels report --full) holds it "
        "as text.</p></noscript>"
        f'<div class="wide"><table id="perf-table"><thead><tr>{header}</tr></thead>'
        "<tbody></tbody></table></div>"
        '<button id="perf-more" hidden>show more rows</button></section>'
    )


def _choices(report: RunReport) -> dict[str, set[str]]:
    """The values the page's drop-downs offer: every mode, device and scenario of the matrix and rows."""
    modes = {c.mode for c in report.cells}
    hardware = {c.hardware for c in report.cells}
    scenarios = {"forward"} | ({"generate"} if report.generation else set())
    return {"mode": modes, "hardware": hardware, "scenario": scenarios}


def _failures(report: RunReport) -> str:
    problems = [c for c in report.cells if c.status != "pass" and (c.error_class or c.error_message)]
    if not problems:
        return ""
    items = []
    for c in problems:
        fix = f" Fix: {escape(c.suggested_fix)}" if c.suggested_fix else ""
        where = f"{model_label(c.model_id, c.model_key)} {c.mode} / {c.hardware}"
        items.append(f"<li>{escape(where)}: {escape(c.reason)}{fix}</li>")
    return f'<section id="failures"><h2>Failures and skips</h2><ul>{"".join(items)}</ul></section>'


def _data(report: RunReport) -> str:
    columns = [{"name": c.name, "kind": c.kind} for c in report.table.columns]
    rows = (report.table.json_rows or "[]").replace("<", "\\u003c")
    return (
        f'<script type="application/json" id="perf-columns">{_script_json(columns)}</script>'
        f'<script type="application/json" id="perf-data">{rows}</script>'
        f'<script type="application/json" id="trend-index">{_script_json(_trend_ids(report.trends))}</script>'
    )
