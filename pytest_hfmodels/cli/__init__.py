"""The `hfmodels` command line: one module per command group, each exposing `register`.

A command module's `register(subparsers)` adds its subparser and sets `func`, a callable taking
the parsed namespace and returning the exit code. Modules are imported only when listed here,
and heavy libraries only inside `func`, so `hfmodels --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pytest_hfmodels.errors import HFModelsError

#: command modules, in the order their commands appear in --help
COMMAND_MODULES: tuple[str, ...] = (
    "registry_cmd",
    "verify_cmd",
    "convert_cmd",
    "cache_cmd",
    "report_cmd",
    "db_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfmodels", description="Verify, convert and report on Hugging Face models."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hfmodels` console script. Exit codes: 0 ok, 1 failed, 2 usage error."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HFModelsError as exc:
        print(f"hfmodels {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
