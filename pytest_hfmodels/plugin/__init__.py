"""The pytest plugin (entry point `hfmodels`): hooks, and nothing else.

Hooks translate between pytest and the plain modules: options are declared and read in
`options`, whether the run asked for the plugin is `activation`'s answer, per-session state
lives in `session.PluginSession` (in `config.stash`), xdist decisions in `xdist`, result storage
in `recorder`. A bad option or registry becomes a `pytest.UsageError` (exit code 4).

Installed, the plugin is loaded into every pytest run of its environment, so loading it imports
only what declaring the options and fixtures needs (never torch, transformers, onnxruntime or
openvino), and a run that does not ask for it (no `--hf-*` option, no `hf_*` ini key, no `hf_*`
fixture requested) detects no hardware, reads no registry and makes no recorder.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_hfmodels.plugin.activation import RowWatcher, declare_options, plugin_asked
from pytest_hfmodels.plugin.fixtures import (  # noqa: F401 (pytest finds fixtures as the plugin's attributes)
    hf_case,
    hf_device,
    hf_hardware,
    hf_model_files,
    hf_model_path,
    hf_onnx_path,
    hf_record,
    hf_runner,
    hf_session,
)
from pytest_hfmodels.plugin.session import CASE_RECORD_KEY, existing_session, plugin_session
from pytest_hfmodels.plugin.xdist import DistDefault, XdistHooks

SUITE_PATH = Path(__file__).parent.parent / "suite" / "test_models.py"
#: the marks every case carries; made once, as a mark per case costs more than the rest of its param
_CASE_MARK = pytest.mark.hfmodels
_GROUP_MARKS: dict[str, pytest.MarkDecorator] = {}


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.register(DistDefault(), "hfmodels-dist-default")
    declare_options(parser)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("hf_list_models"):
        return None
    from pytest_hfmodels.errors import RegistryError, SelectionError
    from pytest_hfmodels.registry.select import as_table

    session = plugin_session(config)
    s = session.settings
    listed_set = config.getoption("hf_set") or "all"  # the whole registry unless a set is named
    try:
        # The custom set is a file of its own, its models placed as a run would place them.
        listed = (
            session.entries
            if s.model_set == "custom"
            else session.registry.select(s.families, s.models, listed_set)
        )
        print(as_table(listed))
    except (RegistryError, SelectionError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    return 0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hfmodels: a generated Hugging Face model case")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "hfmodels-xdist")
    if not hasattr(config, "workerinput"):  # only the controller stores results, once a row arrives
        config.pluginmanager.register(RowWatcher(config), "hfmodels-rows")
    if plugin_asked(config):
        _start_session(config)


def _start_session(config: pytest.Config) -> None:
    """The asked-for run's session, made now: a bad option, registry or selection is a usage error
    before collection, not a collection error; the selection's own suite replaces the default paths."""
    from pytest_hfmodels.errors import RegistryError, SelectionError

    settings = plugin_session(config).settings
    if settings.suite_requested or settings.registry_dirs:
        try:
            _ = plugin_session(config).cases
        except (RegistryError, SelectionError) as exc:
            raise pytest.UsageError(str(exc)) from exc
    if settings.suite_requested and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(SUITE_PATH)]


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = existing_session(config)
    if session is None or not (session.settings.suite_requested or session.hardware_detected):
        return []
    return ["hfmodels hardware:", *session.hardware.header_lines()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hf_case" not in metafunc.fixturenames:
        return
    from pytest_hfmodels.cases.expand import coarsened

    cases = coarsened(plugin_session(metafunc.config).cases, case_grain(metafunc))
    params = [pytest.param(case, id=case.id, marks=_case_marks(case.entry.key)) for case in cases]
    metafunc.parametrize("hf_case", params, indirect=True)


def case_grain(metafunc: pytest.Metafunc) -> str:
    """What a test varies over, from what it asks for: hf_case or hf_record itself, every case (input
    sizes, scenarios); hf_runner or hf_device, model x mode x device; else (hf_model_path,
    hf_model_files, hf_onnx_path) one per model."""
    own = set(inspect.signature(metafunc.function).parameters)
    if own & {"hf_case", "hf_record"}:
        return "case"
    if {"hf_runner", "hf_device"} & set(metafunc.fixturenames):
        return "runner"
    return "model"


def _case_marks(key: str) -> tuple[pytest.MarkDecorator, ...]:
    # xdist_group keeps `--dist loadgroup` (given explicitly) grouping by model where pytest allows
    group = _GROUP_MARKS.get(key)
    if group is None:
        group = _GROUP_MARKS[key] = pytest.mark.xdist_group(key)
    return (_CASE_MARK, group)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    record = item.stash.get(CASE_RECORD_KEY, None)
    if record is not None and (report.when == "call" or (report.when == "setup" and not report.passed)):
        from pytest_hfmodels.results import USER_PROPERTY

        error = call.excinfo.value if call.excinfo is not None and report.failed else None
        skip_reason = report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else None
        worker = getattr(item.config, "workerinput", {}).get("workerid", "main")
        row = record.to_row(item.nodeid, report.outcome, call.duration, error, skip_reason, worker)
        report.user_properties.append((USER_PROPERTY, row.to_dict()))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = existing_session(session.config)
    if state is None:
        return
    state.close()
    if state.cases_computed:
        from pytest_hfmodels.plugin import exit_gc

        exit_gc.freeze_heap_at_exit()
    if not hasattr(session.config, "workerinput") and state.cases_computed:
        from pytest_hfmodels.cache import admin as cache_admin

        # Past CACHE_CLEANUP_THRESHOLD GB, entries idle CACHE_CLEANUP_MIN_AGE_DAYS go, oldest first.
        cache_admin.clean_if_needed(state.cache_root)
