"""PNG plots of a run report, drawn with matplotlib's Agg canvas.

Figures are built with `matplotlib.figure.Figure` and an Agg canvas directly, not pyplot, so no
global backend or figure registry is touched (reports can be drawn inside a pytest session).
A plot with nothing measured to show returns None rather than an empty picture.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_hfmodels.report.model import RunReport, model_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: a picture with more models is unreadable (and slow to draw); the tables hold every model
MAX_PLOTTED_MODELS = 24
#: above this many cells the heatmap shows a legend instead of a word in every cell
MAX_LABELLED_CELLS = 120
_STATUS_CODES = {"pass": 0, "fail": 1, "skip": 2}
_STATUS_COLOURS = ("#2e9e44", "#d1352b", "#b0b0b0", "#ffffff")  # pass, fail, skip, not run


def _png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No Software/date metadata: the same report gives the same bytes.
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _shown(shown: Sequence[object], every: Sequence[object]) -> str:
    return "" if len(shown) == len(every) else f"\n(first {len(shown)} of {len(every)} models)"


def latency_png(report: RunReport) -> bytes | None:
    """Bars of p50 latency per model, one bar per mode x hardware, at the smallest batch measured."""
    from matplotlib.figure import Figure

    smallest: dict[tuple[str, str, str], tuple[int, float]] = {}
    for row in report.performance:
        if row.latency_p50_ms is None:
            continue
        key = (model_label(row.model_id, row.model_key), row.mode, row.hardware)
        batch = row.batch_size if row.batch_size is not None else 0
        if key not in smallest or batch < smallest[key][0]:
            smallest[key] = (batch, row.latency_p50_ms)
    if not smallest:
        return None
    every_model = sorted({key[0] for key in smallest})
    models = every_model[:MAX_PLOTTED_MODELS]
    smallest = {key: value for key, value in smallest.items() if key[0] in models}
    series = sorted({(key[1], key[2]) for key in smallest})
    width = 0.8 / len(series)
    figure = Figure(figsize=(min(24.0, max(6.0, 1.2 * len(models) * len(series) ** 0.5)), 4.5))
    axes = figure.add_subplot()
    for index, (mode, hardware) in enumerate(series):
        positions = [
            m + index * width for m, model in enumerate(models) if (model, mode, hardware) in smallest
        ]
        heights = [
            smallest[(model, mode, hardware)][1] for model in models if (model, mode, hardware) in smallest
        ]
        axes.bar(positions, heights, width=width, label=f"{mode} / {hardware}")
    axes.set_xticks([m + 0.4 - width / 2 for m in range(len(models))], models, rotation=30, ha="right")
    values = [latency for _, latency in smallest.values()]
    if min(values) > 0 and max(values) / min(values) > 100:
        axes.set_yscale("log")  # one slow runtime would flatten every other bar
    axes.set_ylabel("p50 latency (ms)")
    axes.set_title(
        f"Run {report.run.run_id}: p50 latency (smallest batch measured){_shown(models, every_model)}"
    )
    axes.legend(fontsize="small")
    return _png(figure)


def matrix_png(report: RunReport) -> bytes | None:
    """The compatibility matrix as a heatmap: rows models, columns mode / hardware."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    every_model, columns = report.models, report.columns
    if not every_model:
        return None
    models = every_model[:MAX_PLOTTED_MODELS]
    codes = [[3] * len(columns) for _ in models]
    for row_index, (model_id, _) in enumerate(models):
        for column_index, (mode, hardware) in enumerate(columns):
            cell = report.cell(model_id, mode, hardware)
            if cell is not None:
                codes[row_index][column_index] = _STATUS_CODES[cell.status]
    figure = Figure(
        figsize=(min(24.0, max(4.0, 1.3 * len(columns) + 2.5)), max(2.0, 0.45 * len(models) + 1.5))
    )
    axes = figure.add_subplot()
    axes.imshow(codes, cmap=ListedColormap(_STATUS_COLOURS), vmin=0, vmax=3, aspect="auto")
    if len(models) * len(columns) <= MAX_LABELLED_CELLS:
        names = {code: status for status, code in _STATUS_CODES.items()}
        for row_index, row in enumerate(codes):
            for column_index, code in enumerate(row):
                axes.text(column_index, row_index, names.get(code, ""), ha="center", va="center", fontsize=8)
    else:  # words in every cell of a big matrix cost seconds to draw and cannot be read
        handles = [Patch(color=_STATUS_COLOURS[code], label=status) for status, code in _STATUS_CODES.items()]
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axes.set_xticks(range(len(columns)), [f"{mode}\n{hardware}" for mode, hardware in columns], fontsize=8)
    axes.set_yticks(range(len(models)), [model_label(model_id, key) for model_id, key in models], fontsize=8)
    axes.set_title(f"Run {report.run.run_id}: compatibility{_shown(models, every_model)}")
    return _png(figure)
