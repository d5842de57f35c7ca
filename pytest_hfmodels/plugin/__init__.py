"""The pytest plugin (entry point `hfmodels`): hooks, and nothing else.

Hooks translate between pytest and the plain modules: options are declared and read in
`options`, per-session state lives in `session.PluginSession` (in `config.stash`), xdist
decisions in `xdist`, result storage in `recorder`. A bad option or registry becomes a
`pytest.UsageError` (exit code 4). Loading this package imports no torch, transformers,
onnxruntime or openvino.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_hfmodels.cache import admin as cache_admin
from pytest_hfmodels.errors import RegistryError, SelectionError
from pytest_hfmodels.execution.pool import RunnerPool
from pytest_hfmodels.hub.outage import HubOutage
from pytest_hfmodels.plugin import exit_gc, fixtures
from pytest_hfmodels.plugin.options import add_options, read_settings
from pytest_hfmodels.plugin.recorder import ResultRecorder
from pytest_hfmodels.plugin.session import (
    CASE_RECORD_KEY,
    SESSION_KEY,
    WORKERINPUT_HARDWARE,
    WORKERINPUT_HUB_OUTAGE,
    PluginSession,
    plugin_session,
)
from pytest_hfmodels.plugin.xdist import LoadGroupDefault, XdistHooks
from pytest_hfmodels.registry.select import as_table
from pytest_hfmodels.results import USER_PROPERTY
from pytest_hfmodels.runners.threads import available_cpus, thread_budget

# Fixtures are found as attributes of the plugin module.
hf_session = fixtures.hf_session
hf_hardware = fixtures.hf_hardware
hf_case = fixtures.hf_case
hf_record = fixtures.hf_record
hf_device = fixtures.hf_device
hf_model_files = fixtures.hf_model_files
hf_model_path = fixtures.hf_model_path
hf_runner = fixtures.hf_runner

SUITE_PATH = Path(__file__).parent.parent / "suite" / "test_models.py"


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.register(LoadGroupDefault(), "hfmodels-loadgroup")
    add_options(parser)


def _new_session(config: pytest.Config) -> PluginSession:
    settings = read_settings(config)
    workerinput = getattr(config, "workerinput", {})
    # From xdist's own workerinput, not PYTEST_XDIST_WORKER_COUNT: a pytest started inside a
    # worker inherits that variable without being a worker.
    workers = int(workerinput.get("workercount", 1))
    outage = workerinput.get(WORKERINPUT_HUB_OUTAGE)
    return PluginSession(
        settings,
        hardware_dicts=workerinput.get(WORKERINPUT_HARDWARE),
        workers=workers,
        runners=RunnerPool(
            settings.pool_memory_mb,
            settings.cache_dir,
            verify_cache=settings.verify_cache,
            threads=thread_budget(settings.threads, workers, available_cpus()),
        ),
        hub_outage=HubOutage(Path(outage)) if outage else HubOutage.for_new_session(),
    )


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("hf_list_models"):
        return None
    session = _new_session(config)
    s = session.settings
    listed_set = config.getoption("hf_set") or "all"  # the whole registry unless a set is named
    try:
        print(as_table(session.registry.select(s.families, s.models, listed_set)))
    except (RegistryError, SelectionError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    return 0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hfmodels: a generated Hugging Face model case")
    session = _new_session(config)
    config.stash[SESSION_KEY] = session
    if session.settings.suite_requested or session.settings.registry_dirs:
        try:
            _ = session.cases  # validate registries and selection now: a usage error, not a collection error
        except (RegistryError, SelectionError) as exc:
            raise pytest.UsageError(str(exc)) from exc
    if session.settings.suite_requested and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(SUITE_PATH)]
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "hfmodels-xdist")
    if not hasattr(config, "workerinput"):  # only the controller stores results
        config.pluginmanager.register(ResultRecorder(config), "hfmodels-recorder")


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = plugin_session(config)
    if not (session.settings.suite_requested or session.hardware_detected):
        return []
    return ["hfmodels hardware:", *session.hardware.header_lines()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hf_case" not in metafunc.fixturenames:
        return
    cases = plugin_session(metafunc.config).cases
    params = [
        pytest.param(case, id=case.id, marks=[pytest.mark.hfmodels, pytest.mark.xdist_group(case.entry.key)])
        for case in cases
    ]
    metafunc.parametrize("hf_case", params, indirect=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    record = item.stash.get(CASE_RECORD_KEY, None)
    if record is not None and (report.when == "call" or (report.when == "setup" and not report.passed)):
        error = call.excinfo.value if call.excinfo is not None and report.failed else None
        skip_reason = report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else None
        worker = getattr(item.config, "workerinput", {}).get("workerid", "main")
        row = record.to_row(item.nodeid, report.outcome, call.duration, error, skip_reason, worker)
        report.user_properties.append((USER_PROPERTY, row.to_dict()))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(SESSION_KEY, None)
    if state is not None:
        state.runners.close()
        if state.cases_computed:
            exit_gc.freeze_heap_at_exit()
        if not hasattr(session.config, "workerinput"):
            state.hub_outage.clear()
        if not hasattr(session.config, "workerinput") and state.cases_computed:
            # Past CACHE_CLEANUP_THRESHOLD GB, entries idle CACHE_CLEANUP_MIN_AGE_DAYS go, oldest first.
            cache_admin.clean_if_needed(state.cache_root)
