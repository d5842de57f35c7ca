"""The SVG charts: well-formed, self-contained, every text escaped, a tooltip on every mark."""

from __future__ import annotations

from xml.etree import ElementTree

from pytest_hfmodels.report import svg

SVG = "{http://www.w3.org/2000/svg}"


def parse(text: str) -> ElementTree.Element:
    root = ElementTree.fromstring(text)
    assert root.tag == f"{SVG}svg"
    # Nothing outside the chart: no link, image, style sheet or font.
    assert not any(element.tag in (f"{SVG}a", f"{SVG}image", f"{SVG}style") for element in root.iter())
    return root


def test_bars_escape_names_and_title_every_bar() -> None:
    values = {("<b>bert</b>", "onnx & cpu"): 1.5, ("gpt2", "onnx & cpu"): 3.0, ("gpt2", "openvino"): 0.25}
    root = parse(svg.bars("p50 <ms>", ["<b>bert</b>", "gpt2"], ["onnx & cpu", "openvino"], values, "ms"))
    bars = [rect for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]
    tips = sorted(rect.findtext(f"{SVG}title") or "" for rect in bars)
    assert tips == [
        "<b>bert</b> onnx & cpu: 1.500 ms",
        "gpt2 onnx & cpu: 3.000 ms",
        "gpt2 openvino: 0.250 ms",
    ]
    heights = {rect.findtext(f"{SVG}title"): float(rect.get("height", 0)) for rect in bars}
    assert heights["gpt2 onnx & cpu: 3.000 ms"] == 2 * heights["<b>bert</b> onnx & cpu: 1.500 ms"]


def test_lines_break_where_nothing_was_measured_and_ring_marked_points() -> None:
    series = svg.Series(
        "p50", ((0.0, 1.0, "a"), (1.0, None, ""), (2.0, 2.0, "b"), (3.0, 8.0, "c")), marked=(3,)
    )
    root = parse(svg.lines("trend", [series], "ms", "run", x_names=["r1", "r2", "r3", "r4"]))
    assert len(root.findall(f".//{SVG}polyline")) == 1  # the lone first point has no line; 3 and 4 do
    points = [c for c in root.iter(f"{SVG}circle") if c.get("class") != "step"]
    assert [c.findtext(f"{SVG}title") for c in points] == ["a", "b", "c"]
    (ring,) = (c for c in root.iter(f"{SVG}circle") if c.get("class") == "step")
    assert ring.get("cx") == points[2].get("cx")


def test_nothing_measured_draws_nothing() -> None:
    assert svg.lines("empty", [svg.Series("p50", ((0.0, None, ""),))], "ms", "batch") == ""


def test_status_grid_colours_each_cell_by_its_status() -> None:
    root = parse(svg.status_grid("matrix", ["bert"], ["onnx", "openvino"], {(0, 0): "fail"}))
    cells = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert [(c.findtext(f"{SVG}title"), c.get("fill")) for c in cells] == [
        ("bert onnx: fail", svg.STATUS_COLOURS["fail"]),
        ("bert openvino: not run", "#ffffff"),
    ]
