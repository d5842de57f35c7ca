"""Loading the plugin imports no heavy library (the plugin must keep `pytest --help` fast), and a
run that does not ask for the plugin is left alone: no hardware probe, no session, no recorder."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "onnxruntime", "openvino")


def _modules_after(code: str, cwd: Path) -> set[str]:
    """Heavy modules loaded after `code` runs in a fresh interpreter in `cwd` (a user's project,
    not this repository, whose own test conftest imports them on purpose)."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=cwd)
    return set(done.stdout.split())


def test_importing_the_plugin_imports_no_heavy_library(tmp_path: Path) -> None:
    assert _modules_after("import pytest_hfmodels.plugin", tmp_path) == set()


def test_list_models_and_collection_import_no_heavy_library(tmp_path: Path) -> None:
    code = (
        "import pytest, contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert pytest.main(['--hf-list-models', '-p', 'no:cacheprovider']) == 0\n"
        "    args = ['--hf-family', 'bert', '--collect-only', '-q', '-p', 'no:cacheprovider']\n"
        "    assert pytest.main(args) == 0\n"
    )
    assert _modules_after(code, tmp_path) == set()


# A project that has nothing to do with models, with a conftest recording, in every process of the
# run (the controller and each xdist worker), which watched modules got imported, which of the
# plugin's objects are registered, whether a plugin session was made, and every child process
# started (the hardware probe is one: `python -m pytest_hfmodels.cases.hardware_probe`).
WATCH_CONFTEST = """
import json, os, subprocess, sys

WATCHED = {watched!r}
LOG = {log!r}
_start = subprocess.Popen.__init__


def _logged_start(self, args, *rest, **options):
    argv = [str(arg) for arg in args] if isinstance(args, (list, tuple)) else [str(args)]
    with open(LOG, "a") as out:
        out.write(json.dumps({{"child": argv}}) + "\\n")
    _start(self, args, *rest, **options)


subprocess.Popen.__init__ = _logged_start


def pytest_sessionfinish(session):
    from pytest_hfmodels.plugin.session import SESSION_KEY

    config = session.config
    state = {{
        "worker": hasattr(config, "workerinput"),
        "modules": sorted(name for name in WATCHED if name in sys.modules),
        "plugins": sorted(name for name, _ in config.pluginmanager.list_name_plugin() if "hfmodels" in name),
        "session": SESSION_KEY in config.stash,
    }}
    with open(LOG, "a") as out:
        out.write(json.dumps(state) + "\\n")
"""
#: what a run that does not ask for the plugin must not import
NOT_FOR_UNRELATED_RUNS = (
    *HEAVY,
    "yaml",
    "duckdb",
    "pytest_hfmodels.registry.loader",
    "pytest_hfmodels.cases.expand",
    "pytest_hfmodels.cases.hardware_probe",
    "pytest_hfmodels.execution.case_record",
    "pytest_hfmodels.execution.pool",
    "pytest_hfmodels.sources.resolve",
    "pytest_hfmodels.runners",
    "pytest_hfmodels.db.store",
)


Watched = tuple[pytest.RunResult, list[dict], list[list[str]]]


def _watched_run(pytester: pytest.Pytester, *args: str) -> Watched:
    """Runs pytest in a subprocess; returns its result, each process's state and every child started."""
    log = pytester.path / "watch.jsonl"
    pytester.makeconftest(WATCH_CONFTEST.format(watched=NOT_FOR_UNRELATED_RUNS, log=str(log)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return result, [x for x in lines if "child" not in x], [x["child"] for x in lines if "child" in x]


@pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_a_run_that_does_not_ask_is_left_alone(pytester: pytest.Pytester, dist: list[str]) -> None:
    pytester.makepyfile(test_unrelated="def test_one():\n    assert 1 + 1 == 2\n")
    result, states, children = _watched_run(pytester, *dist)
    result.assert_outcomes(passed=1)
    assert [state["worker"] for state in states].count(False) == 1  # the controller's state
    assert len(states) == (3 if dist else 1)  # and each worker's
    for state in states:
        assert state["modules"] == [], state
        assert state["session"] is False
        assert "hfmodels-recorder" not in state["plugins"]
    assert not [argv for argv in children if any("hardware_probe" in arg for arg in argv)]
    if dist:  # the child processes were seen: xdist's workers
        assert len(children) >= 2


def test_the_watch_sees_a_run_that_asks(pytester: pytest.Pytester) -> None:
    """The same watch on a run given a selection: it makes its session and reads the registries."""
    pytester.makepyfile(test_unrelated="def test_one():\n    assert 1 + 1 == 2\n")
    result, [state], _ = _watched_run(pytester, "test_unrelated.py", "--hf-model", "bert-tiny")
    result.assert_outcomes(passed=1)
    assert state["session"] is True
    assert {"yaml", "pytest_hfmodels.registry.loader"} <= set(state["modules"])


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="the probe is for OpenVINO here")
@pytest.mark.parametrize(
    ("devices", "probed"), [([], True), (["--cpu-only"], False)], ids=["best", "cpu-only"]
)
def test_the_accelerator_probe_runs_unless_the_run_is_cpu_only(
    pytester: pytest.Pytester, devices: list[str], probed: bool
) -> None:
    """OpenVINO is installed, so a run that may use its devices asks the probe; `--cpu-only` reads
    the CPU alone and starts no probe, and still collects its cases on the cpu."""
    args = ("--hf-model", "bert-tiny", "--hf-mode", "from_pretrained", "--collect-only", "-q", *devices)
    result, _, children = _watched_run(pytester, *args)
    assert result.ret == 0, result.stdout.str()[-2000:]
    assert any("bert-tiny-from_pretrained-cpu" in line for line in result.outlines)
    assert any(any("hardware_probe" in arg for arg in argv) for argv in children) is probed


def test_a_teams_test_asks_through_its_fixtures_under_xdist(pytester: pytest.Pytester) -> None:
    """No option, no ini key: the fixtures make the session where the test runs; each worker then
    detects the hardware on its own, and both collect the same cases."""
    pytester.makepyfile(test_team="def test_case(hf_case, hf_hardware):\n    assert hf_hardware.get('cpu')\n")
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "-k", "bert-tiny-pipeline")
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and outcomes["passed"] >= 1, result.stdout.str()[-2000:]


def test_the_plugin_exposes_every_fixture_of_the_fixtures_module() -> None:
    """pytest finds fixtures as attributes of the plugin module: a fixture added to `fixtures` and
    not imported by the plugin would exist for no test."""
    import pytest_hfmodels.plugin as plugin
    from pytest_hfmodels.plugin import fixtures

    def declared(module: object) -> dict[str, object]:
        found = vars(module).items()
        return {name: value for name, value in found if hasattr(value, "_fixture_function_marker")}

    assert len(declared(fixtures)) >= 9
    assert declared(plugin) == declared(fixtures)
