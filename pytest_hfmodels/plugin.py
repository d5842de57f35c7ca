"""The pytest plugin (entry point `hfmodels`): options, hooks, and nothing else.

Hooks translate between pytest and the plain modules: a bad option or registry becomes a
`pytest.UsageError` (exit code 4), everything else is delegated. Loading this module imports
no torch, transformers, onnxruntime or openvino.
"""

from __future__ import annotations

import argparse
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import cache_admin, exit_gc, fixtures, recorder
from .errors import OptionError, RegistryError, SelectionError
from .hardware import parse_hardware_list
from .pool import RunnerPool
from .registry import as_table
from .results import USER_PROPERTY
from .runners import MODES
from .session import PluginSession
from .settings import MODEL_SETS, build_settings
from .state import CASE_RECORD_KEY, SESSION_KEY, WORKERINPUT_HARDWARE, plugin_session
from .threads import available_cpus, thread_budget

# Fixtures are found as attributes of the plugin module.
hf_session = fixtures.hf_session
hf_hardware = fixtures.hf_hardware
hf_case = fixtures.hf_case
hf_record = fixtures.hf_record
hf_device = fixtures.hf_device
hf_model_files = fixtures.hf_model_files
hf_model_path = fixtures.hf_model_path
hf_runner = fixtures.hf_runner

SUITE_PATH = Path(__file__).parent / "suite" / "test_models.py"


def _hardware_option(value: str) -> str:
    try:
        parse_hardware_list(value)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.register(LoadGroupDefault(), "hfmodels-loadgroup")
    group = parser.getgroup("hfmodels", "Hugging Face model tests (pytest-hfmodels)")
    group.addoption(
        "--hf-family", action="append", metavar="NAME", help="families to test (repeatable, comma lists)"
    )
    group.addoption(
        "--hf-model", action="append", metavar="KEY", help="model keys to test (repeatable, comma lists)"
    )
    group.addoption("--hf-set", choices=MODEL_SETS, help="model set: small (default), key, all or custom")
    group.addoption(
        "--hf-models-file", metavar="PATH", help="the custom set: JSON/YAML {key: {name, family, ...}}"
    )
    group.addoption(
        "--hf-mode",
        action="append",
        metavar="MODES",
        help=f"modes, comma list: {', '.join(MODES)} (default pipeline,from_pretrained)",
    )
    group.addoption(
        "--all-hardware", dest="hf_all_hardware", action="store_true", help="every detected device"
    )
    group.addoption("--cpu-only", dest="hf_cpu_only", action="store_true", help="the cpu only")
    group.addoption(
        "--hf-hardware",
        type=_hardware_option,
        metavar="LIST",
        help="devices, comma list (cpu, cuda, cuda1, rocm, mps, ov-gpu, ov-npu)",
    )
    group.addoption("--hf-list-models", action="store_true", help="print the registries as a table and exit")
    group.addoption(
        "--hf-registry", action="append", metavar="DIR", help="extra registry folder (repeatable)"
    )
    group.addoption("--hf-cache-dir", metavar="DIR", help="cache for tiny models and conversions")
    group.addoption("--hf-offline", action="store_true", help="never reach the Hub: the HF cache answers")
    group.addoption(
        "--hf-batch-sizes", metavar="LIST", help="batch sizes to measure, comma list (default 1,4,8)"
    )
    group.addoption(
        "--hf-seq-lengths", metavar="LIST", help="text lengths in tokens, comma list (default 32,128)"
    )
    group.addoption(
        "--hf-audio-seconds", metavar="LIST", help="audio lengths in seconds, comma list (default 1,5)"
    )
    group.addoption(
        "--hf-threads",
        metavar="N",
        help="CPU threads per runtime (default: the runtime's own; under -n, CPUs divided by workers)",
    )
    group.addoption("--hf-verify-only", action="store_true", help="check outputs, skip timing")
    group.addoption("--hf-benchmark-only", action="store_true", help="time, skip output checks")
    group.addoption("--hf-warmup", type=int, metavar="N", help="untimed warm-up calls (default 3)")
    group.addoption("--hf-rounds", type=int, metavar="N", help="minimum timed rounds (default 10)")
    group.addoption("--hf-min-time", type=float, metavar="S", help="minimum timed seconds (default 0.1)")
    group.addoption(
        "--hf-pool-memory-mb",
        metavar="MIB",
        help="memory for loaded models kept for reuse per process (default: a quarter of RAM)",
    )
    parser.addini("hf_families", "default families to test", type="args", default=[])
    parser.addini("hf_models", "default model keys to test", type="args", default=[])
    parser.addini("hf_set", "default model set (small, key, all)", default="")
    parser.addini("hf_modes", "default modes, comma list", default="")
    parser.addini("hf_hardware", "default devices, comma list", default="")
    parser.addini(
        "hf_registry_dirs", "extra registry folders, relative to the rootdir", type="args", default=[]
    )
    parser.addini("hf_cache_dir", "cache for tiny models and conversions", default="")
    parser.addini("hf_offline", "never reach the Hub (true/false)", default="false")
    parser.addini("hf_batch_sizes", "batch sizes to measure, comma list", default="")
    parser.addini("hf_seq_lengths", "text lengths in tokens to measure, comma list", default="")
    parser.addini("hf_audio_seconds", "audio lengths in seconds to measure, comma list", default="")
    parser.addini("hf_models_file", "the custom set's file (with hf_set = custom)", default="")
    parser.addini("hf_pool_memory_mb", "memory for loaded models kept for reuse, MiB", default="")
    parser.addini("hf_threads", "CPU threads per runtime", default="")
    recorder.add_options(group, parser)


def _new_session(config: pytest.Config) -> PluginSession:
    try:
        settings = build_settings(config.getoption, config.getini, config.rootpath, MODES)
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from exc
    workerinput = getattr(config, "workerinput", {})
    # From xdist's own workerinput, not PYTEST_XDIST_WORKER_COUNT: a pytest started inside a
    # worker inherits that variable without being a worker.
    workers = int(workerinput.get("workercount", 1))
    return PluginSession(
        settings,
        hardware_dicts=workerinput.get(WORKERINPUT_HARDWARE),
        workers=workers,
        runners=RunnerPool(
            settings.pool_memory_mb,
            settings.cache_dir,
            threads=thread_budget(settings.threads, workers, available_cpus()),
        ),
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
        config.pluginmanager.register(recorder.ResultRecorder(config), "hfmodels-recorder")


class LoadGroupDefault:
    """`pytest -n N` on the generated suite distributes with `--dist loadgroup` unless told otherwise.

    Cases carry `xdist_group(<model key>)` marks; under loadgroup a worker gets all of a model's
    cases, so each model is loaded by one worker instead of by every worker. A wrapper, because
    xdist's own pytest_cmdline_main turns an unset --dist into "load" and must see ours first.
    """

    @pytest.hookimpl(wrapper=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> Generator[None, Any, Any]:
        option = config.option
        distributing = getattr(option, "numprocesses", None) and not getattr(option, "distload", False)
        if distributing and getattr(option, "dist", None) == "no" and _suite_requested(config):
            option.dist = "loadgroup"
        return (yield)


def _suite_requested(config: pytest.Config) -> bool:
    try:
        return build_settings(config.getoption, config.getini, config.rootpath, MODES).suite_requested
    except OptionError:
        return False  # pytest_configure reports it as a usage error


class XdistHooks:
    """Registered only when pytest-xdist is installed (its hook would be unknown otherwise)."""

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKERINPUT_HARDWARE] = plugin_session(node.config).hardware.to_dicts()


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
        if not hasattr(session.config, "workerinput") and state.cases_computed:
            # Past CACHE_CLEANUP_THRESHOLD GB, entries idle CACHE_CLEANUP_MIN_AGE_DAYS go, oldest first.
            cache_admin.clean_if_needed(state.cache_root)
