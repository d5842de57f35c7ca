"""`hfmodels report`: a run's Markdown or HTML report, or a comparison of two runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pytest_hfmodels.cases.settings import DEFAULT_DB_PATH
from pytest_hfmodels.cli.arguments import file_path, folder_path
from pytest_hfmodels.errors import OptionError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="report a run, or compare two runs")
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
        help="folder for the report, plots and matrix JSON (markdown without --out: stdout only; "
        "html default: .hfmodels/reports/run-ID)",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        default=None,
        metavar=("RUN_A", "RUN_B"),
        help="compare p50 latency of RUN_B against RUN_A",
    )
    parser.add_argument(
        "--fail-on-regression",
        default=None,
        metavar="PERCENT",
        help="with --compare: exit 1 when a case is slower by more than PERCENT (e.g. 10%%)",
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
    if value < 0:
        raise OptionError(f"{option}: {text!r} must not be negative")
    return value


def run(args: argparse.Namespace) -> int:
    from pytest_hfmodels.report.compare import compare_runs, render_comparison
    from pytest_hfmodels.report.queries import latest_run_id
    from pytest_hfmodels.report.write import write_report

    if args.compare is not None:
        run_a = parse_run_id(args.compare[0], "--compare")
        run_b = parse_run_id(args.compare[1], "--compare")
        threshold = 10.0
        if args.fail_on_regression is not None:
            threshold = parse_percent(args.fail_on_regression, "--fail-on-regression")
        comparison = compare_runs(args.db, run_a, run_b, threshold)
        sys.stdout.write(render_comparison(comparison))
        return 1 if args.fail_on_regression is not None and comparison.regressions else 0
    if args.fail_on_regression is not None:
        raise OptionError("--fail-on-regression: only meaningful with --compare RUN_A RUN_B")
    run_id = parse_run_id(args.run, "--run") if args.run is not None else None
    out = args.out
    if out is None and args.format == "markdown":
        # The plain command answers on stdout, like the tools it replaces; files need --out.
        from pytest_hfmodels.report.markdown import render_markdown
        from pytest_hfmodels.report.queries import load_run_report

        sys.stdout.write(render_markdown(load_run_report(args.db, run_id)))
        return 0
    if out is None:
        out = args.db.parent / "reports" / f"run-{run_id if run_id is not None else latest_run_id(args.db)}"
    for path in write_report(args.db, out, run_id=run_id, fmt=args.format):
        print(path)
    return 0
