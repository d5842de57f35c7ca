"""`hfmodels report`: a run's report (Markdown or one HTML page), what changed since an earlier run.

On a terminal the Markdown report is what a person reads in one screen (summary, what changed,
per model its matrix row and fastest runtime); `--full`, a pipe or a file gets every section.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pytest_hfmodels.cases.defaults import DEFAULT_DB_PATH
from pytest_hfmodels.cli.arguments import file_path, folder_path, positive_int
from pytest_hfmodels.errors import OptionError

#: what counts as changed unless --threshold says otherwise
DEFAULT_THRESHOLD = "10%"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="report a run: summary, what changed, trends, timings")
    parser.add_argument(
        "--db",
        type=file_path,
        default=DEFAULT_DB_PATH,
        metavar="PATH",
        help=f"results database (default: {DEFAULT_DB_PATH})",
    )
    parser.add_argument("--run", default=None, metavar="ID", help="run to report (default: the latest)")
    parser.add_argument("--format", choices=("markdown", "html"), default="markdown")
    parser.add_argument(
        "--out",
        type=folder_path,
        default=None,
        metavar="DIR",
        help="folder for the report, its charts and the matrix JSON (markdown without --out: stdout only; "
        "html default: .hfmodels/reports/run-ID)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="every section on a terminal too (a pipe or a file always gets them)",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        default=None,
        metavar=("RUN_A", "RUN_B"),
        help="report RUN_B, with what changed since RUN_A (default: the latest run against the "
        "previous run of the same selection)",
    )
    parser.add_argument(
        "--threshold",
        default=DEFAULT_THRESHOLD,
        metavar="PERCENT",
        help=f"a p50 that moved by more than this changed (default {DEFAULT_THRESHOLD.replace('%', '%%')})",
    )
    parser.add_argument(
        "--history",
        type=positive_int,
        default=20,
        metavar="N",
        help="runs a trend goes back (default 20)",
    )
    parser.add_argument(
        "--fail-on-regression",
        default=None,
        metavar="PERCENT",
        help="exit 1 when a case is slower than in the run compared with by more than PERCENT (e.g. 10%%)",
    )
    parser.set_defaults(func=run)


def parse_run_id(text: str, option: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise OptionError(f"{option}: {text!r} is not a run id") from None
    if value < 1:
        raise OptionError(f"{option}: {text!r} is not a run id")
    return value


def parse_percent(text: str, option: str) -> float:
    """'10%' or '10' -> 10.0; a negative or non-numeric value names the option."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise OptionError(f"{option}: {text!r} is not a percentage like 10%") from None
    if not value >= 0 or value == float("inf"):
        raise OptionError(f"{option}: {text!r} must be a finite percentage, not negative")
    return value


def run(args: argparse.Namespace) -> int:
    from pytest_hfmodels.report.markdown import render_markdown
    from pytest_hfmodels.report.model import plural
    from pytest_hfmodels.report.queries import load_run_report
    from pytest_hfmodels.report.write import table_form, write_files

    threshold = parse_percent(args.threshold, "--threshold")
    fail_above = None
    if args.fail_on_regression is not None:
        fail_above = parse_percent(args.fail_on_regression, "--fail-on-regression")
    run_id = parse_run_id(args.run, "--run") if args.run is not None else None
    baseline = None
    if args.compare is not None:
        if run_id is not None:
            raise OptionError("--compare RUN_A RUN_B reports RUN_B: drop --run")
        baseline = parse_run_id(args.compare[0], "--compare")
        run_id = parse_run_id(args.compare[1], "--compare")
    # The plain command answers on stdout, like the tools it replaces; files need --out (or html).
    to_stdout = args.out is None and args.format == "markdown"
    full = args.full or not to_stdout or not sys.stdout.isatty()
    report = load_run_report(
        args.db,
        run_id,
        baseline=baseline,
        history=args.history,
        threshold_pct=min(threshold, fail_above) if fail_above is not None else threshold,
        table=table_form(args.format) if full else None,
    )
    if to_stdout:
        sys.stdout.write(render_markdown(report, full=full))
    else:
        out = args.out or args.db.parent / "reports" / f"run-{report.run.run_id}"
        for path in write_files(report, out, args.format):
            print(path)
    changes = report.changes
    if fail_above is not None and changes is not None:
        slower = [c for c in changes.regressions if c.delta_pct > fail_above]
        if slower:
            print(
                f"hfmodels report: {plural(len(slower), 'case')} slower than in run "
                f"{changes.baseline.run_id} "
                f"by more than {fail_above:g}%",
                file=sys.stderr,
            )
            return 1
    return 0
