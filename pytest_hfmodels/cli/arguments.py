"""What every command shares about its arguments: one-line usage errors, and `type=` checks.

A `type=` check rejects a bad value while the command line is parsed, before any work or request,
and argparse names the option in its message (exit code 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from pytest_hfmodels.cases.settings import non_negative
from pytest_hfmodels.errors import OptionError
from pytest_hfmodels.hub.paths import repo_file_problem

USAGE_ERROR = 2
_Number = TypeVar("_Number", int, float)


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line: the usage is a `--help` away."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(message: str) -> str:
    """`message` on one line: messages quoting a library (DuckDB, transformers) may span several."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def positive_int(text: str) -> int:
    value = _number(int, text, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0, by the rule the pytest options use (`cases.settings.non_negative`)."""
    try:
        return non_negative(text)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse `type=` for an integer in [low, high]."""

    def check(text: str) -> int:
        value = _number(int, text, "an integer")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {value}")
        return value

    return check


def folder_path(text: str) -> Path:
    """A folder that may not exist yet, but is not a file (nothing there could be written to)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    return path


def existing_folder(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder")
    return path


def file_path(text: str) -> Path:
    """A file's path, which may not exist yet: anything but a folder."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    return path


def file_path_to_write(text: str) -> Path:
    """A file to create (with no parent folders made for it): its folder must exist."""
    path = file_path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: folder {str(path.parent)!r} does not exist")
    return path


def hub_repo_id(text: str) -> str:
    """A Hub repo id ('name' or 'owner/name'), by the Hub client's own rule."""
    # Documented as huggingface_hub.utils.validate_repo_id; the package does not re-export it for mypy.
    from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]

    try:
        validate_repo_id(text)
    except ValueError as exc:  # HFValidationError: its message quotes the id
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def model_folder_or_repo_id(text: str) -> str:
    """A local model folder, or else a Hub repo id: '/missing' is neither, and fails here, not
    later as a Hub request for a repo named '/missing'."""
    path = Path(text).expanduser()
    if path.is_dir():
        return text
    if path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a model folder")
    try:
        return hub_repo_id(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r}: no such folder, and not a Hub repo id") from None


def repo_file_path(text: str) -> str:
    """A file's path inside a Hub repo: relative, '/'-separated, with no '.', '..' or empty part.

    Checked before any request: the path is joined to a cache folder when the file is downloaded,
    so '../..' or an absolute path would name a file outside it.
    """
    problem = repo_file_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _number(kind: Callable[[str], _Number], text: str, what: str) -> _Number:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
