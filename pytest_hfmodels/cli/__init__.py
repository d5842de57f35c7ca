"""The `hfmodels` command line: one module per command group, each exposing `register`.

A command module's `register(subparsers)` adds its subparser and sets `func`, a callable taking
the parsed namespace and returning the exit code. Modules are imported only when listed here,
and heavy libraries only inside `func`, so `hfmodels --help` stays fast.

Exit codes: 0 done; 1 the command ran and failed (an `HFModelsError`, or any other exception,
then named by its type); 2 the command line is wrong (argparse and the `type=` checks of
`arguments`, or an `OptionError`), judged before any work or request; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from pytest_hfmodels.cli.arguments import USAGE_ERROR, OneLineParser, one_line
from pytest_hfmodels.errors import HFModelsError, OptionError

#: command modules, in the order their commands appear in --help
COMMAND_MODULES: tuple[str, ...] = (
    "registry_cmd",
    "verify_cmd",
    "convert_cmd",
    "cache_cmd",
    "report_cmd",
    "db_cmd",
)
FAILED = 1
INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C
#: set (to anything but 0 or empty) to get the traceback instead of the one-line error
DEBUG_ENV = "HFMODELS_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="hfmodels", description="Verify, convert and report on Hugging Face models.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hfmodels` console script. Exit codes: 0 ok, 1 failed, 2 usage error."""
    args = build_parser().parse_args(argv)
    command = " ".join(filter(None, ("hfmodels", args.command, getattr(args, "db_action", None))))
    return exit_code(command, lambda: int(args.func(args)))


def exit_code(command: str, action: Callable[[], int]) -> int:
    """Run `action`; an exception becomes one line on stderr, `COMMAND: error: ...`, and an exit code.

    An error this package did not raise on purpose is named by its type too; HFMODELS_DEBUG=1
    lets it through with its traceback instead.
    """
    try:
        code = action()
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers, not at interpreter exit
        return code
    except KeyboardInterrupt:
        return _error(command, "interrupted", INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`hfmodels registry | head`): nothing left to tell it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    except Exception as exc:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        if isinstance(exc, OptionError):
            return _error(command, str(exc), USAGE_ERROR)
        if isinstance(exc, HFModelsError):
            return _error(command, str(exc), FAILED)
        return _error(command, f"{type(exc).__name__}: {exc} ({DEBUG_ENV}=1 shows the traceback)", FAILED)


def _error(command: str, message: str, code: int) -> int:
    print(f"{command}: error: {one_line(message)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
