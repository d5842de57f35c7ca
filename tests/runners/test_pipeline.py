"""The pipeline mode: what it refuses before it runs."""

from __future__ import annotations

import pytest

from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.errors import DependencyImportError, DependencyMissingError
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.runners import runner_class
from pytest_hfmodels.sources.resolve import resolve_model_files
from tests.helpers import torchvision_import_error

pytestmark = pytest.mark.slow  # builds a real (tiny) model


def test_mask_generation_without_torchvision_names_the_import_error() -> None:
    """The mask-generation pipeline post-processes with torchvision: where it does not import (absent,
    or built for another torch), loading says so, and the plugin skips the case with that line."""
    error = torchvision_import_error()
    if error is None:
        pytest.skip("torchvision imports here: the mask-generation pipeline runs")
    entry = next(e for e in load_registries([]).entries if e.key == "sam-tiny")
    folder = resolve_model_files(entry, default_cache_root(), offline=True).path
    runner = runner_class("pipeline")(entry, Device(label="cpu", kind="cpu", name="test cpu"))
    with pytest.raises(DependencyImportError) as raised:
        runner.load(folder)
    assert str(raised.value) == (
        "mode 'pipeline' of task 'mask-generation' needs the Python package 'torchvision', "
        f"which does not import: {error}"
    )
    assert "\n" not in str(raised.value) and raised.value.package == "torchvision"
    assert isinstance(raised.value, DependencyMissingError)  # what the hf_runner fixture skips
