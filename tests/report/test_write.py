"""Reports and run comparison over real databases holding real measured timings.

The timings are of a pure-Python loop, measured here: a "slowed" case runs twenty times the
work of its baseline, so the comparison flags it however fast this machine is.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import statistics
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from pytest_hfmodels import cli
from pytest_hfmodels.db.environment import RunEnvironment
from pytest_hfmodels.db.store import open_database, write_run
from pytest_hfmodels.errors import ResultsError
from pytest_hfmodels.report.compare import compare_runs
from pytest_hfmodels.report.markdown import render_markdown
from pytest_hfmodels.report.queries import load_run_report
from pytest_hfmodels.report.table import COLUMNS
from pytest_hfmodels.report.write import compatibility_json, write_report
from pytest_hfmodels.results import Measurement, ResultRow
from tests import results_helpers

ROUNDS = 7


def measure_loop(iterations: int) -> Measurement:
    """Time `sum(range(iterations))` ROUNDS times, after one warm-up call."""
    sum(range(iterations))
    samples_ms = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        sum(range(iterations))
        samples_ms.append((time.perf_counter_ns() - start) / 1e6)
    quantiles = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return Measurement(
        batch_size=1,
        sequence_length=16,
        precision="fp32",
        latency_mean_ms=statistics.fmean(samples_ms),
        latency_p50_ms=statistics.median(samples_ms),
        latency_p90_ms=quantiles[89],
        latency_p99_ms=quantiles[98],
        latency_stdev_ms=statistics.stdev(samples_ms),
        iterations=ROUNDS,
        warmup=1,
        timer="perf_counter_ns",
        contended=False,
    )


def make_row(
    model: str,
    mode: str,
    measurement: Measurement | None,
    *,
    status: str = "pass",
    error_class: str | None = None,
) -> ResultRow:
    return results_helpers.make_row(
        f"{model.split('/')[-1]}-{mode}-cpu",
        model=model,
        mode=mode,
        measurement=measurement,
        status=status,
        error_class=error_class,
        error_message="a <b>bad</b> thing | happened" if error_class else None,
        suggested_fix="install it" if error_class else None,
        duration_s=0.1,
        parameters=None,
    )


def store(db: Path, rows: list[ResultRow]) -> int:
    return write_run(db, RunEnvironment.capture(["pytest"], []), rows)


@pytest.fixture(scope="module")
def baseline() -> dict[str, Measurement]:
    return {"bert": measure_loop(20_000), "gpt2": measure_loop(20_000)}


@pytest.fixture
def db(tmp_path: Path, baseline: dict[str, Measurement]) -> Path:
    path = tmp_path / "results.duckdb"
    store(
        path,
        [
            make_row("org/bert", "pipeline", baseline["bert"]),
            make_row("org/gpt2", "pipeline", baseline["gpt2"]),
            make_row("org/bert", "onnxruntime", None, status="fail", error_class="ModelConversionError"),
            make_row("org/gpt2", "openvino", None, status="skip"),
        ],
    )
    return path


def run_cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    modules = tuple(dict.fromkeys((*cli.COMMAND_MODULES, "report_cmd", "db_cmd")))
    monkeypatch.setattr(cli, "COMMAND_MODULES", modules)
    try:
        return cli.main(list(argv))
    except SystemExit as exit:  # argparse's own checks (type=) exit while parsing
        return int(exit.code or 0)


def test_compare_flags_the_slowed_case_only(db: Path, baseline: dict[str, Measurement]) -> None:
    slowed = store(
        db,
        [
            make_row("org/bert", "pipeline", measure_loop(400_000)),
            make_row("org/gpt2", "pipeline", baseline["gpt2"]),
        ],
    )
    comparison = compare_runs(db, 1, slowed, threshold_pct=10)
    assert [(d.model_id, d.mode) for d in comparison.regressions] == [("org/bert", "pipeline")]
    unchanged = next(d for d in comparison.deltas if d.model_id == "org/gpt2")
    assert unchanged.delta_pct == 0 and not unchanged.regression


def test_two_equal_runs_pass_and_the_cli_exit_codes_follow(
    db: Path,
    baseline: dict[str, Measurement],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    same = store(
        db,
        [
            make_row("org/bert", "pipeline", baseline["bert"]),
            make_row("org/gpt2", "pipeline", baseline["gpt2"]),
        ],
    )
    assert compare_runs(db, 1, same, threshold_pct=10).regressions == ()
    assert (
        run_cli(
            monkeypatch, "report", "--db", str(db), "--compare", "1", str(same), "--fail-on-regression", "10%"
        )
        == 0
    )
    capsys.readouterr()
    slowed = store(db, [make_row("org/bert", "pipeline", measure_loop(400_000))])
    assert (
        run_cli(
            monkeypatch,
            "report",
            "--db",
            str(db),
            "--compare",
            "1",
            str(slowed),
            "--fail-on-regression",
            "10%",
        )
        == 1
    )
    captured = capsys.readouterr()
    # The report of the later run, what changed since the earlier one: gpt2 was not run the third time.
    assert captured.out.startswith(f"# pytest-hfmodels: run {slowed}")
    assert "Against run 1 " in captured.out and "asked for" in captured.out
    assert "1 only in run 1, 0 only in this run" in captured.out
    assert "| bert pipeline/cpu b1 s16 |" in captured.out.split("### Regressions")[1]
    assert "1 case slower than in run 1 by more than 10%" in captured.err


def test_markdown_report_has_the_matrix_the_timings_and_the_failures(db: Path) -> None:
    report = load_run_report(db, table="markdown")
    text = render_markdown(report)
    assert "| model | onnxruntime / cpu | openvino / cpu | pipeline / cpu |" in text
    assert "| bert (org/bert) | fail (ModelConversionError) |  | pass |" in text
    assert "| gpt2 (org/gpt2) |  | skip | pass |" in text
    assert "a &lt;b&gt;bad&lt;/b&gt; thing \\| happened" in text  # a raw pipe would split the cell
    assert "| bert | pipeline | cpu | forward | 1 | 16 |  | fp32 |" in text
    assert "| gpt2 | pipeline | cpu | forward | 1 | 16 |  | fp32 |" in text
    # The summary comes first: cases by mode, failures by class with their fix.
    summary = text.split("## Summary")[1].split("\n## ")[0]
    assert "4 cases: 2 passed, 1 failed, 1 skipped" in summary
    assert "| ModelConversionError | 1 | install it | bert-onnxruntime-cpu |" in summary


def test_performance_table_cells_are_escaped_by_the_database(tmp_path: Path) -> None:
    """The table's Markdown lines come out of DuckDB: they escape as the renderer does."""
    db = tmp_path / "results.duckdb"
    said = "a <b>pipe</b> | and\na newline & more"
    store(db, [dataclasses.replace(make_row("org/bert", "pipeline", measure_loop(1000)), output_sample=said)])
    text = render_markdown(load_run_report(db, table="markdown"))
    line = next(line for line in text.splitlines() if line.startswith("| bert | pipeline |"))
    assert line.endswith("| a &lt;b&gt;pipe&lt;/b&gt; \\| and a newline &amp; more |")
    assert line.count(" | ") == len(COLUMNS) - 1  # one unescaped separator between two cells


def test_matrix_json_is_keyed_by_model(db: Path) -> None:
    data = compatibility_json(load_run_report(db))
    assert sorted(data["models"]) == ["org/bert", "org/gpt2"]
    assert data["models"]["org/bert"]["modes"]["onnxruntime"]["cpu"]["status"] == "fail"
    assert data["models"]["org/gpt2"]["modes"]["openvino"]["cpu"]["status"] == "skip"


def test_html_report_is_one_self_contained_file(db: Path, tmp_path: Path) -> None:
    written = write_report(db, tmp_path / "out", fmt="html")
    html_path = next(p for p in written if p.suffix == ".html")
    page = html_path.read_text()
    references = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, flags=re.IGNORECASE)
    assert references and all(ref.startswith(("#", "data:")) for ref in references)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page  # the page's policy forbids any request
    assert all(not tag.startswith("<script src") for tag in re.findall(r"<script[^>]*>", page))
    assert "&lt;b&gt;bad&lt;/b&gt;" in page
    assert json.loads((tmp_path / "out" / "hardware_compatibility_matrix.json").read_text())["run_id"] == 1


def test_markdown_report_writes_svg_charts(db: Path, tmp_path: Path) -> None:
    written = write_report(db, tmp_path / "md")
    names = sorted(str(p.relative_to(tmp_path / "md")) for p in written)
    assert names == [
        "charts/latency.svg",
        "charts/matrix.svg",
        "hardware_compatibility_matrix.json",
        "report.md",
    ]
    for chart in (tmp_path / "md" / "charts").glob("*.svg"):
        assert ElementTree.fromstring(chart.read_text()).tag == "{http://www.w3.org/2000/svg}svg"
    text = (tmp_path / "md" / "report.md").read_text()
    assert "![compatibility matrix](charts/matrix.svg)" in text
    matrix = json.loads((tmp_path / "md" / "hardware_compatibility_matrix.json").read_text())
    assert matrix == json.loads(json.dumps(compatibility_json(load_run_report(db))))


def test_report_cli_writes_a_given_run(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    assert (
        run_cli(monkeypatch, "report", "--db", str(db), "--run", "1", "--format", "html", "--out", str(out))
        == 0
    )
    assert str(out / "report.html") in capsys.readouterr().out
    # Without --out, Markdown of the latest run goes to stdout and no file is written.
    assert run_cli(monkeypatch, "report", "--db", str(db)) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# pytest-hfmodels: run ") and "## Compatibility" in printed
    assert not (db.parent / "reports").exists()
    # HTML without --out goes beside the database.
    assert run_cli(monkeypatch, "report", "--db", str(db), "--format", "html") == 0
    assert list((db.parent / "reports").glob("run-*/report.html"))


@pytest.mark.parametrize(
    ("argv", "named", "code"),
    [
        (["report", "--db", "{tmp}/missing.duckdb"], "missing.duckdb", 1),
        (["report", "--db", "{db}", "--run", "x"], "--run", 2),  # a usage error
        (["report", "--db", "{db}", "--run", "42"], "no run 42", 1),
        (
            ["report", "--db", "{db}", "--compare", "1", "1", "--fail-on-regression", "ten"],
            "--fail-on-regression",
            2,
        ),
        (["report", "--db", "{db}", "--run", "1", "--compare", "1", "1"], "--compare", 2),
        (["report", "--db", "{db}", "--threshold=-5%"], "--threshold", 2),
        (["report", "--db", "{db}", "--history", "0"], "--history", 2),
    ],
)
def test_bad_input_gives_one_line_naming_it(
    db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    named: str,
    code: int,
) -> None:
    args = [a.format(tmp=tmp_path, db=db) for a in argv]
    assert run_cli(monkeypatch, *args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0]


def test_an_empty_database_has_no_latest_run(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    open_database(empty).close()
    with pytest.raises(ResultsError, match=r"empty\.duckdb: no runs stored yet"):
        load_run_report(empty)


def test_families_x_modes_with_skip_reasons_in_every_format(tmp_path: Path) -> None:
    db = tmp_path / "results.duckdb"
    skip_reason = (
        "mode 'pipeline' needs torchvision, which fails at import: operator torchvision::nms does not exist"
    )

    def row(model: str, family: str, mode: str, status: str, message: str | None = None) -> ResultRow:
        return results_helpers.make_row(
            f"{model}-{mode}-cpu",
            model=f"org/{model}",
            family=family,
            mode=mode,
            status=status,
            error_class="ModelConversionError" if status == "fail" else None,
            error_message=message,
        )

    store(
        db,
        [
            row("bert-a", "bert", "pipeline", "pass"),
            row("bert-b", "bert", "pipeline", "pass"),
            row("bert-a", "bert", "onnxruntime", "fail", "no valid ONNX export"),
            row("sam-tiny", "sam", "from_pretrained", "pass"),
            row("sam-tiny", "sam", "pipeline", "skip", skip_reason),
        ],
    )
    report = load_run_report(db)
    assert [(c.family, c.mode, c.summary) for c in report.family_modes] == [
        ("bert", "onnxruntime", "fail 1"),
        ("bert", "pipeline", "pass 2"),
        ("sam", "from_pretrained", "pass 1"),
        ("sam", "pipeline", "skip 1"),
    ]
    markdown = render_markdown(report)
    assert "| family | from_pretrained | onnxruntime | pipeline |" in markdown
    assert "| bert |  | fail 1 | pass 2 |" in markdown and "| sam | pass 1 |  | skip 1 |" in markdown
    assert f"- sam x pipeline: skip: {skip_reason}" in markdown
    assert "- bert x onnxruntime: fail: ModelConversionError: no valid ONNX export" in markdown
    (html_path,) = (p for p in write_report(db, tmp_path / "html", fmt="html") if p.suffix == ".html")
    page = html_path.read_text()
    assert '<td class="skip" title="skip: mode' in page
    assert html.escape(f"sam x pipeline: skip: {skip_reason}") in page
    families = compatibility_json(report)["families"]
    assert families["sam"]["pipeline"] == {
        "status": "skip",
        "passed": 0,
        "failed": 0,
        "skipped": 1,
        "reasons": [f"skip: {skip_reason}"],
    }
