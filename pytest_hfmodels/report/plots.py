"""The report's charts, as SVG text (`svg`): what each one shows, taken from a RunReport.

Only what is shown is drawn: at most MAX_PLOTTED_MODELS models a chart (the tables hold every
model), and a chart with nothing measured to show is None rather than an empty picture.
"""

from __future__ import annotations

from pytest_hfmodels.report import svg
from pytest_hfmodels.report.model import MAX_PLOTTED_MODELS, RunReport, ScalingPoint, Trend, short_name


def _shown(shown: int, every: int) -> str:
    return "" if shown == every else f" (first {shown} of {every} models)"


def latency_chart(report: RunReport) -> str | None:
    """Bars of p50 latency per model, one bar per mode / device, at the smallest batch and length measured."""
    smallest: dict[tuple[str, str], tuple[float, float]] = {}
    for point in report.scaling:
        if point.axis != "batch" or point.p50_ms is None:
            continue
        key = (short_name(point.model_id, point.model_key), f"{point.mode} / {point.hardware}")
        if key not in smallest or point.x < smallest[key][0]:
            smallest[key] = (point.x, point.p50_ms)
    if not smallest:
        return None
    models = sorted({model for model, _ in smallest})
    series = sorted({name for _, name in smallest})
    shown = _shown(len(models), report.scaled_models)
    title = f"Run {report.run.run_id}: p50 latency at the smallest batch{shown}"
    return svg.bars(title, models, series, {key: p50 for key, (_, p50) in smallest.items()}, "ms")


def matrix_chart(report: RunReport) -> str | None:
    """The compatibility matrix as a grid: rows models, columns mode / device."""
    every, columns = report.models, report.columns
    if not every:
        return None
    models = every[:MAX_PLOTTED_MODELS]
    statuses = {}
    for r, (model_id, _) in enumerate(models):
        for c, (mode, hardware) in enumerate(columns):
            cell = report.cell(model_id, mode, hardware)
            if cell is not None:
                statuses[(r, c)] = cell.status
    return svg.status_grid(
        f"Run {report.run.run_id}: compatibility{_shown(len(models), len(every))}",
        [short_name(model_id, key) for model_id, key in models],
        [f"{mode} / {hardware}" for mode, hardware in columns],
        statuses,
    )


def scaling_charts(report: RunReport) -> dict[str, list[str]]:
    """Per model (its short name): p50 and items/s along batch sizes, then along input length, one line
    per mode / device; an axis the model was measured at one value of is not drawn."""
    by_model: dict[str, list[ScalingPoint]] = {}
    for point in report.scaling:
        by_model.setdefault(short_name(point.model_id, point.model_key), []).append(point)
    charts: dict[str, list[str]] = {}
    for model, points in by_model.items():
        drawn = []
        for axis in ("batch", "tokens", "audio s"):
            on_axis = [p for p in points if p.axis == axis]
            if len({p.x for p in on_axis}) < 2:
                continue
            x_label = "batch size" if axis == "batch" else f"input length ({axis})"
            for metric, unit in (("p50_ms", "p50 ms"), ("throughput_per_s", "items/s")):
                series = _series(on_axis, metric, unit)
                if series:
                    chart = svg.lines(
                        f"{model}: {unit} by {x_label}", series, unit, x_label, log_x=axis == "batch"
                    )
                    if chart:
                        drawn.append(chart)
        if drawn:
            charts[model] = drawn
    return charts


def _series(points: list[ScalingPoint], metric: str, unit: str) -> list[svg.Series]:
    names = sorted({(p.mode, p.hardware) for p in points})
    series = []
    for mode, hardware in names:
        mine = sorted((p for p in points if (p.mode, p.hardware) == (mode, hardware)), key=lambda p: p.x)
        values = [(p.x, getattr(p, metric), p) for p in mine]
        if all(value is None for _, value, _ in values):
            continue
        series.append(
            svg.Series(
                f"{mode} / {hardware}",
                tuple(
                    (x, value, f"{mode} / {hardware} at {svg.tick_text(x)}: {value:.3f} {unit}")
                    if value is not None
                    else (x, None, "")
                    for x, value, _ in values
                ),
            )
        )
    return series


def trend_chart(trend: Trend) -> str:
    """p50 over the runs that measured the case (TTFT and TPOT too for a generate case), a ring where
    the p50 rose by more than the threshold."""
    # Each run and, under it, its commit: where a regression started is where to look.
    names = [f"run {p.run_id}\n{p.git_commit[:7] if p.git_commit else 'no commit'}" for p in trend.points]

    def tip(index: int, what: str, value: float) -> str:
        point = trend.points[index]
        commit = point.git_commit[:10] if point.git_commit else "no commit"
        return f"run {point.run_id} ({point.started_at:%Y-%m-%d %H:%M}, {commit}): {what} {value:.3f} ms"

    series = [
        svg.Series(
            "p50",
            tuple(
                (float(i), p.p50_ms, tip(i, "p50", p.p50_ms) if p.p50_ms is not None else "")
                for i, p in enumerate(trend.points)
            ),
            trend.steps_up,
        )
    ]
    for name in ("ttft_ms", "tpot_ms"):
        values = [getattr(p, name) for p in trend.points]
        if any(value is not None for value in values):
            label = name.removesuffix("_ms").upper()
            series.append(
                svg.Series(
                    label,
                    tuple(
                        (float(i), v, tip(i, label, v) if v is not None else "") for i, v in enumerate(values)
                    ),
                )
            )
    return svg.lines(trend.case.label, series, "ms", "run", x_names=names, width=420)


def generation_charts(report: RunReport) -> list[str]:
    """TTFT and TPOT per model, one bar per mode / device, at each model's smallest batch."""
    smallest: dict[str, int | None] = {}
    for row in report.generation:
        model = short_name(row.model_id, row.model_key)
        if model not in smallest or (row.batch_size or 0) < (smallest[model] or 0):
            smallest[model] = row.batch_size
    charts = []
    for metric, what in (("ttft_ms", "time to first token"), ("tpot_ms", "time per output token")):
        values: dict[tuple[str, str], float] = {}
        for row in report.generation:
            model = short_name(row.model_id, row.model_key)
            value = getattr(row, metric)
            if value is not None and row.batch_size == smallest[model]:
                values.setdefault((model, f"{row.mode} / {row.hardware}"), value)
        if values:
            models = sorted({model for model, _ in values})[:MAX_PLOTTED_MODELS]
            series = sorted({name for _, name in values})
            title = f"Run {report.run.run_id}: {what} at the smallest batch"
            charts.append(svg.bars(title, models, series, values, "ms"))
    return charts


def all_charts(report: RunReport, *, every_trend: bool = True) -> dict[str, str]:
    """Every chart of the report by id: latency, matrix, scaling/<model>/<n>, trend/<n>, generation/<n>;
    without `every_trend`, the trends of changed cases only (the others are a line of text)."""
    charts: dict[str, str] = {}
    for key, chart in (("latency", latency_chart(report)), ("matrix", matrix_chart(report))):
        if chart:
            charts[key] = chart
    for model, drawn in scaling_charts(report).items():
        for index, chart in enumerate(drawn):
            charts[f"scaling/{model}/{index}"] = chart
    for index, trend in enumerate(report.trends):
        if not (every_trend or trend.change):
            continue
        chart = trend_chart(trend)
        if chart:
            charts[f"trend/{index}"] = chart
    for index, chart in enumerate(generation_charts(report)):
        charts[f"generation/{index}"] = chart
    return charts
