"""Fixtures for the generated suite and for teams' own tests.

`hf_case` is parametrized by the plugin with the selected cases; the others build on it:
hf_device -> hf_model_files / hf_model_path -> hf_runner. Anything that cannot run here
(absent device, missing package, model offline and not cached) skips with a reason naming it.

The plugin module exposes these fixtures, so this module loads in every pytest run of the
environment: at load it imports only what the plugin has loaded already. Case records, model
sources and the runner pool load when a fixture first runs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_hfmodels.errors import DependencyMissingError, HardwareUnavailableError, ModelUnavailableError
from pytest_hfmodels.modes import MODES
from pytest_hfmodels.plugin.session import CASE_RECORD_KEY, PluginSession, plugin_session

if TYPE_CHECKING:
    from pytest_hfmodels.cases.expand import Case
    from pytest_hfmodels.cases.hardware import Device, Hardware
    from pytest_hfmodels.execution.case_record import CaseRecord
    from pytest_hfmodels.runners import Runner
    from pytest_hfmodels.sources.resolve import ModelFiles


@pytest.fixture(scope="session")
def hf_session(request: pytest.FixtureRequest) -> PluginSession:
    return plugin_session(request.config)


@pytest.fixture(scope="session")
def hf_hardware(hf_session: PluginSession) -> Hardware:
    """Every device detected on this machine (detected once, on the controller)."""
    return hf_session.hardware


@pytest.fixture
def hf_case(request: pytest.FixtureRequest) -> Case:
    """The generated case: registry entry, mode and device label."""
    from pytest_hfmodels.execution.case_record import CaseRecord

    case: Case = request.param
    if case.grain != "model":  # a row says how a model ran in a mode: a folder's test has no mode
        request.node.stash[CASE_RECORD_KEY] = CaseRecord(case)
    return case


@pytest.fixture
def hf_record(request: pytest.FixtureRequest, hf_case: Case) -> CaseRecord:
    """Where a test stores what it measured; it becomes the case's result row."""
    record: CaseRecord = request.node.stash[CASE_RECORD_KEY]
    return record


@pytest.fixture
def hf_device(hf_case: Case, hf_hardware: Hardware, hf_record: CaseRecord) -> Device:
    device = hf_hardware.get(hf_case.hardware)
    if device is None:
        pytest.skip(
            f"device {hf_case.hardware!r} is not present on this machine "
            f"(detected: {', '.join(hf_hardware.labels)})"
        )
    hf_record.device_name = device.name
    return device


@pytest.fixture
def hf_model_files(hf_case: Case, hf_session: PluginSession, request: pytest.FixtureRequest) -> ModelFiles:
    for module in hf_case.entry.dependencies:
        if importlib.util.find_spec(module) is None:
            pytest.skip(str(DependencyMissingError(module, f"model {hf_case.entry.key!r}")))
    try:
        files = hf_session.model_files(hf_case)
    except (DependencyMissingError, ModelUnavailableError) as exc:
        pytest.skip(str(exc))
    record = request.node.stash.get(CASE_RECORD_KEY, None)
    if record is not None:
        record.model_type = files.model_type
    return files


@pytest.fixture
def hf_model_path(hf_model_files: ModelFiles) -> Path:
    """The folder with the case's model files (built, found in a package or the cache, or downloaded)."""
    return hf_model_files.path


@pytest.fixture
def hf_onnx_path(hf_case: Case, hf_model_files: ModelFiles, hf_session: PluginSession) -> Path:
    """The model's ONNX file: the repo's own when it publishes one (`--hf-onnx-file`), validated
    against PyTorch, else this tool's validated conversion, made once per machine."""
    for module in ("onnx", "onnxruntime", "torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(str(DependencyMissingError(module, "hf_onnx_path")))
    from pytest_hfmodels.convert.onnx.source import model_onnx

    entry, settings = hf_case.entry, hf_session.settings
    own_weights = entry.source == "hub" and not hf_case.random_weights
    onnx, _ = model_onnx(
        hf_model_files.path,
        hf_session.cache_root,
        model_id=entry.id,
        tolerances=entry.tolerances,
        repo_id=entry.id if own_weights else None,
        revision=entry.revision,
        onnx_files=settings.onnx_files,
        offline=settings.offline,
        full_check=settings.verify_cache,
        with_reference=False,
    )
    return onnx.path


@pytest.fixture
def hf_runner(
    hf_case: Case,
    hf_device: Device,
    hf_model_files: ModelFiles,
    hf_session: PluginSession,
    hf_record: CaseRecord,
) -> Runner:
    """The case's runner with its model loaded on the case's device (reused across cases)."""
    for module in MODES[hf_case.mode].packages:
        if importlib.util.find_spec(module) is None:
            pytest.skip(str(DependencyMissingError(module, f"mode {hf_case.mode!r}")))
    try:
        loaded, reused = hf_session.runners.get(hf_case, hf_session.hardware, hf_model_files)
    except HardwareUnavailableError as exc:  # the device exists, but this runtime build cannot use it
        pytest.skip(str(exc))
    except DependencyMissingError as exc:  # a package the runner imports only for some tasks
        pytest.skip(str(exc))
    runner = loaded.runner
    hf_record.measured(
        load_time_s=loaded.load_time_s,
        model_reused=reused,
        model_load_mb=loaded.model_load_mb,
        weights_mb=loaded.weights_mb,
    )
    hf_record.parameters = _parameter_count(runner)
    return runner


def _parameter_count(runner: Runner) -> int | None:
    from pytest_hfmodels.execution.pool import torch_model_of

    model = torch_model_of(runner)
    if model is None:
        return None
    return int(sum(p.numel() for p in model.parameters()))
