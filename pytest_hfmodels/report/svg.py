"""Charts as SVG text: grouped bars, lines over a numeric or ordinal axis, a status grid.

Drawn by hand rather than with matplotlib: a chart is a few kilobytes of text made in about 0.1 ms
(matplotlib took 70 ms a figure, after 0.8 s importing it, on the 2-core machine the reports were
timed on), it scales in the page, and every bar and point carries a tooltip (`<title>`). Every
text is escaped; nothing refers to a font, style sheet or image outside the SVG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

#: colours of series, told apart also by colour-blind readers (Okabe-Ito)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
STATUS_COLOURS = {"pass": "#2e9e44", "fail": "#d1352b", "skip": "#b0b0b0"}
#: the ring drawn where a value rose past the threshold
STEP_COLOUR = "#d1352b"
#: keyword arguments of `_el` that are not SVG attribute names as they stand
_ATTRIBUTE_NAMES = {
    "class_": "class",
    "font_size": "font-size",
    "text_anchor": "text-anchor",
    "stroke_width": "stroke-width",
}


@dataclass(frozen=True)
class Series:
    name: str
    #: (x, y, tooltip); y None: not measured there (the line breaks)
    points: tuple[tuple[float, float | None, str], ...]
    marked: tuple[int, ...] = ()  #: indexes of points drawn with a red ring (a step up)


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _el(tag: str, content: str | None = None, **attributes: object) -> str:
    """One element; attribute names with '_' get '-', numbers are rounded, text is escaped."""
    written = [f"<{tag}"]
    for name, value in attributes.items():
        if isinstance(value, float):
            text = _num(value)
        elif isinstance(value, int):
            text = str(value)
        else:
            text = escape(value, quote=True) if isinstance(value, str) else escape(str(value), quote=True)
        written.append(f'{_ATTRIBUTE_NAMES.get(name, name)}="{text}"')
    opening = " ".join(written)
    return f"{opening}/>" if content is None else f"{opening}>{content}</{tag}>"


def _tip(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def tick_text(value: float) -> str:
    """A short axis label: 0.012, 1.5, 230, 12k."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value / 1000:.0f}k"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if step * factor >= raw:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _open(width: float, height: float, title: str, title_size: int = 13) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'width="{_num(width)}" height="{_num(height)}" role="img" aria-label="{escape(title, quote=True)}" '
        'font-family="system-ui, sans-serif" font-size="11">',
        _tip(title),
        _el("rect", width=float(width), height=float(height), fill="#fff"),
        _el("text", escape(title), x=8.0, y=16.0, font_size=title_size),
    ]


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    parts = []
    for index, name in enumerate(names):
        top = y + 15 * index
        parts.append(_el("rect", x=x, y=top, width=10, height=10, fill=_colour(index)))
        parts.append(_el("text", escape(name), x=x + 14, y=top + 9))
    return parts


def _y_axis(low: float, high: float, box: tuple[float, float, float, float], unit: str) -> list[str]:
    """Grid lines and labels of the y axis; `box` is (left, top, right, bottom)."""
    left, top, right, bottom = box
    parts = [_el("text", escape(unit), x=4.0, y=top - 6, fill="#444")]
    for tick in _ticks(low, high):
        y = bottom - (tick - low) / (high - low or 1) * (bottom - top)
        parts.append(_el("line", x1=left, x2=right, y1=y, y2=y, stroke="#e4e4e4"))
        parts.append(_el("text", tick_text(tick), x=left - 4, y=y + 4, text_anchor="end", fill="#444"))
    return parts


def bars(
    title: str,
    groups: Sequence[str],
    series: Sequence[str],
    values: Mapping[tuple[str, str], float],
    unit: str,
) -> str:
    """Grouped bars: one group per entry of `groups`, one bar per series that has a value there."""
    left, top, plot_height = 56.0, 40.0, 170.0
    slot = float(max(18, 12 * len(series)))
    right = left + slot * len(groups)
    bottom = top + plot_height
    legend_width = 12 + 7 * max((len(s) for s in series), default=0)
    label_room = 4.3 * max((len(g) for g in groups), default=0) + 16
    # Wide enough for its title too: a chart of one model is narrow.
    width, height = max(right + legend_width + 30, 16 + 6.6 * len(title)), bottom + label_room
    high = max(values.values(), default=1.0) * 1.08 or 1.0
    parts = _open(width, height, title)
    parts += _y_axis(0.0, high, (left, top, right, bottom), unit)
    bar = (slot - 6) / max(1, len(series))
    for g, group in enumerate(groups):
        for s, name in enumerate(series):
            value = values.get((group, name))
            if value is None:
                continue
            h = value / high * (bottom - top)
            tip = _tip(f"{group} {name}: {value:.3f} {unit}")
            x = left + g * slot + 3 + s * bar
            parts.append(
                _el("rect", tip, x=x, y=bottom - h, width=max(bar - 1, 1.0), height=h, fill=_colour(s))
            )
        middle = left + g * slot + slot / 2 + 3
        parts.append(
            _el("text", escape(group), transform=f"translate({_num(middle)},{_num(bottom + 8)}) rotate(35)")
        )
    parts.append(_el("line", x1=left, x2=right, y1=bottom, y2=bottom, stroke="#888"))
    parts += _legend(series, right + 12, top)
    parts.append("</svg>")
    return "".join(parts)


def lines(
    title: str,
    series: Sequence[Series],
    unit: str,
    x_label: str,
    *,
    x_names: Sequence[str] | None = None,
    log_x: bool = False,
    width: float = 340.0,
    height: float = 200.0,
) -> str:
    """Lines over x (numbers, or the indexes of `x_names`: a name's second line, after a newline, is
    written under its first), one per series, a red ring on marked points. Empty text when nothing
    was measured."""
    xs = [x for s in series for x, _, _ in s.points]
    ys = [y for s in series for _, y, _ in s.points if y is not None]
    if not xs or not ys:
        return ""
    two_lines = x_names is not None and any("\n" in name for name in x_names)
    if two_lines:
        height += 11
    # Named points are labelled under themselves, the last at the right edge: room for half a name.
    right = width - (30 if x_names is not None else 14)
    left, top, bottom = 52.0, 40.0, height - (45 if two_lines else 34)
    low_x, high_x = min(xs), max(xs)
    scaled = log_x and low_x > 0

    def place_x(x: float) -> float:
        low, high, at = (math.log(low_x), math.log(high_x), math.log(x)) if scaled else (low_x, high_x, x)
        return left + (at - low) / (high - low) * (right - left) if high > low else (left + right) / 2

    high = max(ys) * 1.1 or 1.0

    def place_y(y: float) -> float:
        return bottom - y / high * (bottom - top)

    legend_rows = len(series) if len(series) > 1 else 0
    parts = _open(width, height + 15 * legend_rows, title, title_size=12)
    parts += _y_axis(0.0, high, (left, top, right, bottom), unit)
    labelled = sorted(set(xs))
    if x_names is not None:  # ordinal: at most 6 labels, the last always
        every = max(1, math.ceil(len(labelled) / 6))
        labelled = [x for i, x in enumerate(labelled) if i % every == 0 or i == len(labelled) - 1]
    for x in labelled:
        name = x_names[int(x)] if x_names is not None else tick_text(x)
        first, _, second = name.partition("\n")
        at = place_x(x)
        parts.append(_el("text", escape(first), x=at, y=bottom + 14, text_anchor="middle", fill="#444"))
        if second:
            parts.append(_el("text", escape(second), x=at, y=bottom + 25, text_anchor="middle", fill="#777"))
    label_y = bottom + (39 if two_lines else 28)
    parts.append(_el("text", escape(x_label), x=(left + right) / 2, y=label_y, text_anchor="middle"))
    parts.append(_el("line", x1=left, x2=right, y1=bottom, y2=bottom, stroke="#888"))
    for index, one in enumerate(series):
        parts += _polylines(one, _colour(index), place_x, place_y)
    if legend_rows:
        parts += _legend([s.name for s in series], left, height - 2)
    parts.append("</svg>")
    return "".join(parts)


def _polylines(
    one: Series, colour: str, place_x: Callable[[float], float], place_y: Callable[[float], float]
) -> list[str]:
    """A series' line (broken where not measured), its points, and rings on its marked points."""
    parts = []
    path: list[str] = []
    for x, y, _ in [*one.points, (0.0, None, "")]:  # the sentinel flushes the last piece
        if y is not None:
            path.append(f"{_num(place_x(x))},{_num(place_y(y))}")
            continue
        if len(path) > 1:
            parts.append(_el("polyline", fill="none", stroke=colour, stroke_width=1.8, points=" ".join(path)))
        path = []
    for index, (x, y, tip) in enumerate(one.points):
        if y is None:
            continue
        cx, cy = place_x(x), place_y(y)
        parts.append(_el("circle", _tip(tip), cx=cx, cy=cy, r=3, fill=colour))
        if index in one.marked:
            ring = _tip(f"slower by more than the threshold here: {tip}")
            parts.append(
                _el(
                    "circle",
                    ring,
                    class_="step",
                    cx=cx,
                    cy=cy,
                    r=7,
                    fill="none",
                    stroke=STEP_COLOUR,
                    stroke_width=2,
                )
            )
    return parts


def status_grid(
    title: str, rows: Sequence[str], columns: Sequence[str], statuses: Mapping[tuple[int, int], str]
) -> str:
    """A grid of coloured cells, rows x columns; `statuses` maps (row, column) to pass, fail or skip."""
    cell_w, cell_h = 64.0, 16.0
    left = 10 + 6.2 * max((len(r) for r in rows), default=0)
    top = 30 + 4.6 * max((len(c) for c in columns), default=0)
    width, height = left + cell_w * len(columns) + 90, top + cell_h * len(rows) + 10
    parts = _open(width, height, title)
    for c, column in enumerate(columns):
        x = left + c * cell_w + cell_w / 2
        parts.append(
            _el("text", escape(column), transform=f"translate({_num(x)},{_num(top - 4)}) rotate(-35)")
        )
    for r, row in enumerate(rows):
        y = top + r * cell_h
        parts.append(_el("text", escape(row), x=left - 6, y=y + 12, text_anchor="end"))
        for c, column in enumerate(columns):
            status = statuses.get((r, c))
            fill = STATUS_COLOURS.get(status or "", "#ffffff")
            tip = _tip(f"{row} {column}: {status or 'not run'}")
            x = left + c * cell_w
            parts.append(
                _el("rect", tip, x=x, y=y, width=cell_w - 2, height=cell_h - 2, fill=fill, stroke="#ddd")
            )
    legend_x = left + cell_w * len(columns) + 12
    for index, (status, colour) in enumerate(STATUS_COLOURS.items()):
        y = top + 15 * index
        parts.append(_el("rect", x=legend_x, y=y, width=10, height=10, fill=colour))
        parts.append(_el("text", status, x=legend_x + 14, y=y + 9))
    parts.append("</svg>")
    return "".join(parts)
