"""The command line's shared argument checks and its one-line errors, in process."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_hfmodels.cli import DEBUG_ENV, exit_code, main
from pytest_hfmodels.cli.arguments import (
    file_path_to_write,
    folder_path,
    model_folder_or_repo_id,
    non_negative_float,
    repo_file_path,
)
from pytest_hfmodels.errors import OptionError, ResultsError


@pytest.mark.parametrize(
    "path", ["model.onnx", "onnx/model.onnx", "a/b/c.json", "model..onnx", ".gitattributes"]
)
def test_relative_repo_file_paths_pass(path: str) -> None:
    assert repo_file_path(path) == path


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "must not be empty"),
        ("../../etc/passwd", "no '..'"),
        ("onnx/../../x", "no '..'"),
        ("onnx//model.onnx", "empty part"),
        ("onnx/", "empty part"),
        ("./model.onnx", "'.'"),
        ("/etc/passwd", "must be relative"),
        ("C:/Windows/win.ini", "must be relative"),
        ("onnx\\model.onnx", "uses '/'"),
        ("..\\..\\x", "uses '/'"),
    ],
)
def test_repo_file_paths_that_could_leave_the_repo_are_rejected(path: str, problem: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=problem):
        repo_file_path(path)


@pytest.mark.parametrize("text", ["-1", "nan", "inf", "soon"])
def test_non_negative_float_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text) if text == "soon" else "finite"):
        non_negative_float(text)


def test_path_kinds(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(argparse.ArgumentTypeError, match="is a file, not a folder"):
        folder_path(str(a_file))
    assert folder_path(str(tmp_path / "new")) == tmp_path / "new"
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder, not a file"):
        file_path_to_write(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        file_path_to_write(str(tmp_path / "no" / "out.json"))
    assert model_folder_or_repo_id(str(tmp_path)) == str(tmp_path)
    assert model_folder_or_repo_id("org/model") == "org/model"
    with pytest.raises(argparse.ArgumentTypeError, match="no such folder, and not a Hub repo id"):
        model_folder_or_repo_id(str(tmp_path / "missing"))
    with pytest.raises(argparse.ArgumentTypeError, match="is a file, not a model folder"):
        model_folder_or_repo_id(str(a_file))


def _bad_json() -> int:
    return len(json.loads("{"))


def _usage() -> int:
    raise OptionError("--thing: 'x' is not a thing")


def _failure() -> int:
    raise ResultsError("a.duckdb: cannot open\n\nLINE 1: more detail")


@pytest.mark.parametrize(
    ("action", "code", "line"),
    [
        (_usage, 2, "hfmodels x: error: --thing: 'x' is not a thing"),
        (_failure, 1, "hfmodels x: error: a.duckdb: cannot open LINE 1: more detail"),
        (
            _bad_json,
            1,
            "hfmodels x: error: JSONDecodeError: Expecting property name enclosed in double quotes: "
            f"line 1 column 2 (char 1) ({DEBUG_ENV}=1 shows the traceback)",
        ),
    ],
)
def test_an_exception_is_one_line_and_an_exit_code(
    action: Callable[[], int],
    code: int,
    line: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert exit_code("hfmodels x", action) == code
    assert capsys.readouterr().err == line + "\n"


def test_debug_shows_the_real_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(json.JSONDecodeError):
        exit_code("hfmodels x", _bad_json)


def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["db", "merge", "a.duckdb", "--into", "b.duckdb", "--lock-timeout", "soon"])
    assert usage.value.code == 2
    assert capsys.readouterr().err == (
        "hfmodels db merge: error: argument --lock-timeout: 'soon' is not a number "
        "(see hfmodels db merge --help)\n"
    )
