"""Broken input to every `hfmodels` command, and to pytest's registries, run as users run them.

Each command runs in its own interpreter, as the console script would. Whatever is broken, the
answer is one `error:` line on stderr naming the broken thing, exit code 2 for a wrong command line
or 1 for a failure, and never a traceback. Nothing here builds or converts a model: every input is
refused before that work would start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_hfmodels.cli import DEBUG_ENV
from pytest_hfmodels.db.store import open_database

USAGE, FAILED = 2, 1
#: a valid registry file of family `twin`; two of them in one folder define the family twice
TWIN = (
    "family: twin\ntask: t\nmodality: text\narchitecture: A\n"
    "models:\n  {key}:\n    source: hub\n    id: org/m\n"
)


@pytest.fixture
def broken(tmp_path: Path) -> dict[str, Path]:
    """One of each kind of broken input, by name."""
    files = {
        "not_utf8_registry": ("registry-latin1/latin1.yaml", "family: f\ntask: caf\xe9\n".encode("latin-1")),
        "duplicate_key_registry": (
            "registry-dup/dup.yaml",
            b"family: f\ntask: t\nmodality: text\nmodels:\n  m:\n    source: hub\n    id: a/b\n    id: a/c\n",
        ),
        "twin_family_a": ("registry-twins/a.yaml", TWIN.format(key="a").encode()),
        "twin_family_b": ("registry-twins/b.yaml", TWIN.format(key="b").encode()),
        "list_config": ("list-config/config.json", b"[1, 2]"),
        "bad_json_config": ("bad-json-config/config.json", b'{"model_type": "bert",'),
        "not_a_db": ("not-a-db.duckdb", b"these are not the bytes of a DuckDB file"),
        "not_parquet": ("spill-0.parquet", b"not parquet"),
        "plain_file": ("plain-file", b"x"),
        "traversal_batch": ("batch.json", b'[{"model_id": "org/m", "file_path": "../../etc/passwd"}]'),
        "not_json_batch": ("not-json.json", b"[{"),
    }
    paths = {}
    for name, (relative, content) in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        paths[name] = path
    paths["missing"] = tmp_path / "missing"
    paths["good_db"] = tmp_path / "good.duckdb"
    open_database(paths["good_db"]).close()
    paths["out"] = tmp_path / "out"
    return paths


def hfmodels(
    *argv: str, cwd: Path, debug: bool = False, **variables: str
) -> subprocess.CompletedProcess[str]:
    # HF_HUB_OFFLINE: a request that slipped through fails at once, never waits on the network.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **variables}
    env.pop(DEBUG_ENV, None)
    if debug:
        env[DEBUG_ENV] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest_hfmodels.cli", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *named: str) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == code, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and result.stderr.strip() == errors[0], result.stderr
    for name in named:
        assert name in errors[0], errors[0]
    return errors[0]


#: (arguments, exit code, what the error line must name); {name} is a path of the `broken` fixture
CASES: list[tuple[list[str], int, list[str]]] = [
    # registry
    (["registry", "ls", "--registry", "{not_utf8_registry.parent}"], FAILED, ["latin1.yaml:2", "not UTF-8"]),
    (
        ["registry", "validate", "--registry", "{duplicate_key_registry.parent}"],
        FAILED,
        ["dup.yaml:8", "duplicate key 'id'"],
    ),
    (["registry", "--registry", "{twin_family_a.parent}"], FAILED, ["b.yaml:1", "also defined in", "a.yaml"]),
    (["registry", "--registry", "{plain_file}"], USAGE, ["--registry", "plain-file"]),
    (["registry", "--registry", "{missing}"], USAGE, ["--registry", "missing"]),
    (["registry", "--set", "huge"], USAGE, ["--set", "huge"]),
    # verify and metadata: a bad repo file path is refused before any request
    (["verify", "org/m", "--file", "../../etc/passwd"], USAGE, ["--file", "../../etc/passwd"]),
    (["verify", "org/m", "--file", "/etc/passwd"], USAGE, ["--file", "must be relative"]),
    (["verify", "org/m", "--file", "onnx\\model.onnx"], USAGE, ["--file", "uses '/'"]),
    (["verify", "org/m", "--file", "onnx//model.onnx"], USAGE, ["--file", "empty part"]),
    (["verify", "org/m", "--file", ""], USAGE, ["--file", "must not be empty"]),
    (["verify", "--batch", "{traversal_batch}"], USAGE, ["--batch", "batch.json", "entry 0", "file_path"]),
    (["verify", "--batch", "{not_json_batch}"], USAGE, ["--batch", "not-json.json", "invalid JSON"]),
    (["verify", "--model-file", "{missing}"], USAGE, ["--model-file", "missing"]),
    (["verify", "../org/m"], USAGE, ["model", "../org/m"]),
    (["verify", "org/m", "--workers", "0"], USAGE, ["--workers"]),
    (["verify"], USAGE, ["name models"]),
    (["verify", "org/m", "--output", "{missing}/results.json"], USAGE, ["--output", "does not exist"]),
    (["metadata", "/etc/passwd"], USAGE, ["model", "/etc/passwd"]),
    # convert: a broken config.json is named before torch is even imported
    (["convert", "{missing}", "--to", "onnx", "-o", "{out}"], USAGE, ["model", "missing", "no such folder"]),
    (["convert", "{plain_file}", "--to", "onnx", "-o", "{out}"], USAGE, ["model", "plain-file"]),
    (["convert", "{list_config.parent}", "--to", "onnx", "-o", "{out}"], FAILED, ["list-config/config.json"]),
    (
        ["convert", "{list_config.parent}", "--to", "parquet", "-o", "{out}"],
        FAILED,
        ["list-config/config.json"],
    ),
    (
        ["convert", "{bad_json_config.parent}", "--to", "onnx", "-o", "{out}"],
        FAILED,
        ["bad-json-config/config.json", "invalid JSON"],
    ),
    (
        ["convert", "{bad_json_config.parent}", "--to", "parquet", "-o", "{out}"],
        FAILED,
        ["bad-json-config/config.json", "invalid JSON"],
    ),
    (["convert", "{list_config.parent}", "--to", "tflite", "-o", "{out}"], USAGE, ["--to", "tflite"]),
    (["convert", "{list_config.parent}", "--to", "onnx", "-o", "{plain_file}"], USAGE, ["--output"]),
    (
        ["convert", "{list_config.parent}", "--to", "parquet", "-o", "{out}", "--compression-level", "99"],
        USAGE,
        ["--compression-level"],
    ),
    (["convert", "{list_config.parent}", "--to", "onnx", "-o", "{out}", "--opset", "0"], USAGE, ["--opset"]),
    # cache
    (["cache", "ls", "--cache-dir", "{plain_file}"], USAGE, ["--cache-dir", "plain-file"]),
    (["cache", "verify", "--cache-dir", "{plain_file}"], USAGE, ["--cache-dir", "plain-file"]),
    (["cache", "clean", "--cache-dir", "{plain_file}"], USAGE, ["--cache-dir", "plain-file"]),
    (["cache", "clean", "--cache-dir", "{out}", "--max-size-gb", "-1"], USAGE, ["--max-size-gb"]),
    (["cache", "clean", "--cache-dir", "{out}", "--min-age-days", "nan"], USAGE, ["--min-age-days"]),
    # report
    (["report", "--db", "{missing}"], FAILED, ["missing", "no results database"]),
    (["report", "--db", "{not_a_db}"], FAILED, ["not-a-db.duckdb"]),
    (["report", "--db", "{good_db}", "--run", "x"], USAGE, ["--run", "'x'"]),
    (["report", "--db", "{good_db}", "--fail-on-regression", "ten"], USAGE, ["--fail-on-regression"]),
    (["report", "--db", "{good_db}", "--format", "pdf"], USAGE, ["--format", "pdf"]),
    # db
    (["db", "merge", "{missing}", "--into", "{out}.duckdb"], FAILED, ["missing", "no results database"]),
    (["db", "merge", "{good_db}", "{not_a_db}", "--into", "{out}.duckdb"], FAILED, ["not-a-db.duckdb"]),
    (
        ["db", "merge", "{good_db}", "--into", "{out}.duckdb", "--lock-timeout", "soon"],
        USAGE,
        ["--lock-timeout"],
    ),
    (["db", "merge", "{good_db}", "--into", "{missing.parent}"], USAGE, ["--into", "is a folder"]),
    (["db", "ingest", "{missing}.parquet", "--db", "{good_db}"], FAILED, ["missing.parquet"]),
    (["db", "ingest", "{not_parquet}", "--db", "{good_db}"], FAILED, ["spill-0.parquet"]),
    (["db", "ingest", "{not_parquet}", "--db", "{missing.parent}"], USAGE, ["--db", "is a folder"]),
    (["db", "info", "--db", "{missing}"], FAILED, ["missing"]),
    (["db", "info", "--db", "{not_a_db}"], FAILED, ["not-a-db.duckdb"]),
    (["db", "vacuum"], USAGE, ["vacuum"]),
    # the command line itself
    ([], USAGE, ["COMMAND"]),
    (["frobnicate"], USAGE, ["frobnicate"]),
]


@pytest.mark.parametrize(("argv", "code", "named"), CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_every_command_answers_broken_input_with_one_line(
    broken: dict[str, Path], tmp_path: Path, argv: list[str], code: int, named: list[str]
) -> None:
    args = [arg.format_map(broken) for arg in argv]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = hfmodels(*args, cwd=tmp_path)
    assert_one_line_error(result, code, *(name.format_map(broken) for name in named))
    # A refused command leaves nothing behind: no output folder, database or staging file.
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_an_unwritable_output_is_named_after_the_work(broken: dict[str, Path], tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full, a file every write to fails")
    result = hfmodels("verify", "org/m", "--check-exists", "--offline", "--output", "/dev/full", cwd=tmp_path)
    assert assert_one_line_error(result, FAILED, "--output /dev/full") == (
        "hfmodels verify: error: --output /dev/full: cannot write: No space left on device"
    )


@pytest.mark.parametrize("action", ["ls", "verify", "clean"])
def test_a_cache_root_from_the_environment_that_is_a_file(
    broken: dict[str, Path], tmp_path: Path, action: str
) -> None:
    result = hfmodels("cache", action, cwd=tmp_path, HFMODELS_CACHE=str(broken["plain_file"]))
    assert_one_line_error(result, USAGE, "$HFMODELS_CACHE", str(broken["plain_file"]), "is a file")


def test_debug_shows_the_traceback(broken: dict[str, Path], tmp_path: Path) -> None:
    result = hfmodels("report", "--db", str(broken["not_a_db"]), cwd=tmp_path, debug=True)
    assert result.returncode == FAILED and "Traceback" in result.stderr


def test_a_failed_merge_leaves_no_new_file_and_an_existing_one_as_it_was(
    broken: dict[str, Path], tmp_path: Path
) -> None:
    into = tmp_path / "nested" / "merged.duckdb"
    result = hfmodels(
        "db", "merge", str(broken["good_db"]), str(broken["not_a_db"]), "--into", str(into), cwd=tmp_path
    )
    assert_one_line_error(result, FAILED, "not-a-db.duckdb")
    assert not into.parent.exists()  # neither the file, nor a staging file, nor the folder made for it

    existing = tmp_path / "existing.duckdb"
    open_database(existing).close()
    content = existing.read_bytes()
    for sources in ([broken["good_db"], broken["not_a_db"]], [broken["good_db"], broken["missing"]]):
        result = hfmodels("db", "merge", *map(str, sources), "--into", str(existing), cwd=tmp_path)
        assert_one_line_error(result, FAILED, sources[1].name)
        assert existing.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_merge_that_works_publishes_the_file(broken: dict[str, Path], tmp_path: Path) -> None:
    into = tmp_path / "new" / "merged.duckdb"
    result = hfmodels("db", "merge", str(broken["good_db"]), "--into", str(into), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in into.parent.iterdir()) == ["merged.duckdb"]


@pytest.mark.parametrize(
    ("registry", "named"),
    [
        ("not_utf8_registry", ["latin1.yaml:2", "not UTF-8"]),
        ("duplicate_key_registry", ["dup.yaml:8", "duplicate key 'id'"]),
        ("twin_family_a", ["a.yaml", "b.yaml", "'twin' is also defined in"]),
    ],
)
def test_pytest_turns_a_broken_registry_into_a_usage_error(
    broken: dict[str, Path], tmp_path: Path, registry: str, named: list[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--hf-registry",
            str(broken[registry].parent),
        ],
        capture_output=True,
        text=True,
        cwd=run,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if line.startswith("ERROR:")]
    for name in named:
        assert name in line, line
