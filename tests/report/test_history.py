"""A run among earlier runs: what changed, trends, the fastest runtime, scaling and generation, read
from a database of three runs whose third is slower on one case and fails another (`runs`)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import statistics
import sys
from pathlib import Path

import duckdb
import pytest

from pytest_hfmodels import cli
from pytest_hfmodels.db.environment import RunEnvironment
from pytest_hfmodels.db.store import write_run
from pytest_hfmodels.report.markdown import SCREEN_ROWS, render_markdown, sparkline
from pytest_hfmodels.report.model import BASELINE_MODE
from pytest_hfmodels.report.queries import load_run_report
from pytest_hfmodels.report.write import write_report
from tests.report import runs

History = tuple[Path, list[int]]


def run_cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    modules = tuple(dict.fromkeys((*cli.COMMAND_MODULES, "report_cmd")))
    monkeypatch.setattr(cli, "COMMAND_MODULES", modules)
    return cli.main(list(argv))


def test_what_changed_is_the_slowed_case_first_and_the_broken_cell(history_db: History) -> None:
    db, (_, second, _) = history_db
    report = load_run_report(db)
    changes = report.changes
    assert changes is not None and changes.baseline.run_id == second
    assert changes.chosen == "the previous run of the same selection"
    slowest = changes.regressions[0]
    model, mode, batch, length = runs.SLOWED
    assert (slowest.case.model_id, slowest.case.mode, slowest.case.batch_size) == (model, mode, batch)
    assert slowest.case.sequence_length == length and slowest.delta_pct > 500
    assert [(s.model_id, s.mode, s.before, s.after) for s in changes.status_changes] == [
        (*runs.BROKEN, "pass", "fail")
    ]
    # The broken case's forward rows measured nothing in the third run.
    assert changes.only_before == 4 and changes.only_after == 0
    (failure,) = report.failure_classes
    assert failure.error_class == "ModelConversionError" and failure.cases == 4
    assert failure.suggested_fix and failure.suggested_fix.startswith("pin onnx")


def test_the_slowed_case_trends_over_three_runs_and_its_regression_starts_in_the_third(
    history_db: History,
) -> None:
    db, ids = history_db
    report = load_run_report(db)
    trend = next(t for t in report.trends if t.change == "regressed")
    assert trend.case.label == "bert onnxruntime/cpu b1 s16"
    assert [p.run_id for p in trend.points] == ids
    assert [p.git_commit for p in trend.points] == list(runs.COMMITS)
    assert trend.regression_start == 2 and 2 in trend.steps_up
    # Every case the run measured is drawn (the run has few), not only those that moved: 20 forward
    # cases, less the 4 BROKEN failed in the third run. Which way each one moved is not asserted: the
    # timings are real, and a loaded machine can move an unchanged case past the threshold.
    forward = [t for t in report.trends if t.case.scenario == "forward"]
    assert len(forward) == 16 and all(len(t.points) == 3 for t in forward)
    text = render_markdown(report)
    row = next(
        line for line in text.splitlines() if line.startswith("| bert onnxruntime/cpu b1 s16 | regressed")
    )
    assert row.endswith(f"| run {ids[2]} ({runs.COMMITS[2][:10]}) |")
    # --history 2: trends go back two runs.
    assert {len(t.points) for t in load_run_report(db, history=2).trends} == {2}


def test_generate_cases_trend_their_ttft_and_tpot(history_db: History) -> None:
    db, _ = history_db
    report = load_run_report(db)
    generate = next(t for t in report.trends if t.case.scenario == "generate")
    assert all(p.ttft_ms and p.tpot_ms and p.ttft_ms > p.tpot_ms for p in generate.points)


def test_previous_run_of_the_selection_skips_a_narrower_run(history_db: History, tmp_path: Path) -> None:
    """A `-k bert` run between two full runs: the next full run compares with the last full one, and
    the narrow run with the last run holding its cases."""
    source, (_, _, third) = history_db
    db = tmp_path / "results.duckdb"
    shutil.copy(source, db)
    environment = RunEnvironment.capture(["pytest", "-k", "bert"], [])
    bert_only = [row for row in runs.run_rows(1) if row.model_id == "org/bert"]
    narrow = write_run(db, dataclasses.replace(environment, run_uid="narrow"), bert_only)
    changes = load_run_report(db, narrow).changes
    assert changes is not None and changes.baseline.run_id == third
    full = write_run(db, dataclasses.replace(environment, run_uid="full"), runs.run_rows(1))
    changes = load_run_report(db, full).changes
    assert changes is not None and changes.baseline.run_id == third
    assert load_run_report(db, full, baseline=narrow).changes.baseline.run_id == narrow  # type: ignore[union-attr]


def test_fastest_runtime_and_speedup_follow_the_rows(history_db: History) -> None:
    """Recomputed here from the stored rows: each mode's p50 at its shortest input, and the speed-up
    over from_pretrained on the lengths both measured."""
    db, (_, _, third) = history_db
    report = load_run_report(db, third)
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        """SELECT model_id, mode, batch_size, sequence_length, latency_p50_ms FROM performance_results
           WHERE run_id = ? AND scenario = 'forward'""",
        [third],
    ).fetchall()
    con.close()
    for fastest in report.fastest:
        mine = [r for r in rows if (r[0], r[2]) == (fastest.model_id, fastest.batch_size)]
        by_mode: dict[str, dict[int | None, float]] = {}
        for _, mode, _, length, p50 in mine:
            by_mode.setdefault(mode, {})[length] = p50
        shortest = {mode: p50s[min(p50s, key=lambda n: n or 0)] for mode, p50s in by_mode.items()}
        assert fastest.mode == min(shortest, key=lambda mode: shortest[mode])
        assert fastest.p50_ms == pytest.approx(shortest[fastest.mode])
        shared = set(by_mode[fastest.mode]) & set(by_mode.get(BASELINE_MODE, {}))
        if not shared:
            assert fastest.speedup is None
            continue
        ratios = [by_mode[BASELINE_MODE][n] / by_mode[fastest.mode][n] for n in shared]
        assert fastest.speedup == pytest.approx(statistics.median(ratios))


def test_scaling_points_cover_batch_and_length(history_db: History) -> None:
    db, _ = history_db
    report = load_run_report(db)
    bert = [p for p in report.scaling if p.model_id == "org/bert" and p.mode == "from_pretrained"]
    assert sorted((p.axis, p.x) for p in bert) == [("batch", 1), ("batch", 4), ("tokens", 16), ("tokens", 32)]
    along_batch = sorted((p for p in bert if p.axis == "batch"), key=lambda p: p.x)
    assert along_batch[1].p50_ms > along_batch[0].p50_ms  # four times the work


def test_generation_rows_compare_their_ids_with_from_pretrained(history_db: History) -> None:
    db, _ = history_db
    report = load_run_report(db)
    assert {(g.mode, g.batch_size) for g in report.generation} == {
        (mode, batch) for mode in ("from_pretrained", "onnxruntime") for batch in runs.BATCHES
    }
    for row in report.generation:
        assert row.same_as_baseline is (None if row.mode == BASELINE_MODE else True)
        assert row.new_tokens == runs.NEW_TOKENS and row.output_sample == runs.GENERATED
    text = render_markdown(report)
    assert "## Generation" in text and "| gpt2 | onnxruntime | cpu | 1 | 16 | 4 |" in text


def test_memory_columns_and_output_samples_are_in_the_table(history_db: History) -> None:
    db, _ = history_db
    text = render_markdown(load_run_report(db, table="markdown"))
    header = next(
        line for line in text.splitlines() if line.startswith("| model | mode | hardware | scenario")
    )
    assert "| weights MB | load MB | inference MB | process MB |" in header
    row = next(
        line
        for line in text.splitlines()
        if line.startswith("| bert | from_pretrained | cpu | forward | 1 |")
    )
    assert "| 4.000 |" in row and row.endswith("| top: paris 0.42, lyon 0.12 (bert) |")


def test_a_terminal_gets_one_screen_and_a_pipe_every_section(
    history_db: History, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = history_db
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert run_cli(monkeypatch, "report", "--db", str(db)) == 0
    screen = capsys.readouterr().out
    assert "## Summary" in screen and "## What changed" in screen and "## Models" in screen
    assert "## Performance" not in screen and "## Trends" not in screen
    # The runs were really timed: how many cases moved past the threshold depends on the machine's
    # load (one on a quiet machine, more on a busy one). A screen shows at most SCREEN_ROWS of each
    # kind, so it stays one screen: 46 lines quiet, at most 62 with five regressions and five
    # improvements, each with its "more" line.
    for section in re.split(r"\n#+ ", screen):  # a table's rows, its header line aside
        assert section.count("\n| ") - 1 <= SCREEN_ROWS, section
    assert len(screen.splitlines()) <= 62
    assert "| bert | pass | pass | pass | b1 " in screen  # the matrix row, then the fastest runtimes
    assert run_cli(monkeypatch, "report", "--db", str(db), "--full") == 0
    full = capsys.readouterr().out
    for section in ("## Summary", "## What changed", "## Compatibility", "## Trends", "## Scaling",
                    "## Generation", "## Performance"):  # fmt: skip
        assert section in full
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert run_cli(monkeypatch, "report", "--db", str(db)) == 0
    assert "## Performance" in capsys.readouterr().out


def test_fail_on_regression_compares_with_the_previous_run(
    history_db: History, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db, (_, second, _) = history_db
    assert run_cli(monkeypatch, "report", "--db", str(db), "--fail-on-regression", "500%") == 1
    assert f"slower than in run {second} by more than 500%" in capsys.readouterr().err
    assert (
        run_cli(monkeypatch, "report", "--db", str(db), "--run", str(second), "--fail-on-regression", "500%")
        == 0
    )


def test_html_report_holds_every_section(history_db: History, tmp_path: Path) -> None:
    db, ids = history_db
    (page_path,) = (p for p in write_report(db, tmp_path, fmt="html") if p.suffix == ".html")
    page = page_path.read_text()
    for section in ("summary", "changes", "compatibility", "trends", "scaling", "generation", "performance"):
        assert f'<section id="{section}">' in page
    assert 'class="trend regressed"' in page and f"regression started in run {ids[2]}" in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg"') > 5
    assert sparkline([1.0, None, 3.0, 2.0]) == "▁ █▅"


def test_markdown_draws_the_trends_of_changed_cases_only(history_db: History, tmp_path: Path) -> None:
    db, _ = history_db
    write_report(db, tmp_path)
    images = re.findall(r"!\[trend of ([^\]]+)\]\((charts/[^)]+)\)", (tmp_path / "report.md").read_text())
    changed = [t.case.label for t in load_run_report(db).trends if t.change]
    assert changed and [label for label, _ in images] == changed
    assert all((tmp_path / path).is_file() for _, path in images)
