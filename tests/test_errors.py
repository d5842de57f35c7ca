"""Errors cross process boundaries intact, and failures get the class their cause deserves."""

from __future__ import annotations

import importlib
import pickle

import numpy as np
import pytest

from pytest_hfmodels.errors import (
    CaseFailedError,
    DependencyImportError,
    DependencyMissingError,
    HFModelsError,
    NumericalMismatchError,
    RegistryError,
)
from pytest_hfmodels.execution.failures import classify
from pytest_hfmodels.runners.checks import check_finite, check_shape


@pytest.mark.parametrize(
    "error",
    [
        RegistryError("f.yaml:3", "unknown field", model="m", field="colour"),
        DependencyMissingError("PIL", "model 'vit-tiny'"),
        DependencyImportError("torchvision", "mode 'pipeline'", "RuntimeError: operator torchvision::nms"),
        CaseFailedError("[other] x: boom"),
    ],
)
def test_errors_pickle_with_their_fields(error: HFModelsError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and copy.__dict__ == error.__dict__


def raised(fn: object) -> BaseException:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def test_classes_of_real_failures() -> None:
    missing = raised(lambda: importlib.import_module("no_such_package_for_hfmodels"))
    assert classify(missing).name == "dependency_missing"
    nan = raised(lambda: check_finite("logits", np.array([1.0, np.nan])))
    assert classify(nan).name == "output_check" and "non-finite" in classify(nan).cause
    shape = raised(lambda: check_shape("logits", (1, 3), (1, 4)))
    assert classify(shape).name == "output_check"
    assert classify(NumericalMismatchError("max abs diff 0.3")).name == "numerical_mismatch"
    assert classify(MemoryError()).name == "out_of_memory"


def test_the_innermost_cause_is_reported_through_a_chain() -> None:
    def wrapped() -> None:
        try:
            importlib.import_module("no_such_package_for_hfmodels")
        except ImportError as exc:
            raise CaseFailedError("[dependency_missing] case") from exc

    failure = classify(raised(wrapped))
    assert failure.name == "dependency_missing"
    assert failure.cause.startswith("ModuleNotFoundError: No module named 'no_such_package_for_hfmodels'")
    assert failure.suggested_fix
