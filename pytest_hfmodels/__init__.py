"""pytest-hfmodels: which Hugging Face models work on which hardware and runtime, measured.

Public names are imported lazily so that `import pytest_hfmodels` (and loading the plugin)
stays free of torch and the runtimes.

Imported first whenever anything of the package is, this module also takes the package out of
pytest's assertion rewriting (`_leave_pytests_rewriting`), so the rest of it loads from the
bytecode pip compiled.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Case": "pytest_hfmodels.cases.expand",
    "ModelEntry": "pytest_hfmodels.registry.model",
    "load_registries": "pytest_hfmodels.registry.loader",
    "ResultRow": "pytest_hfmodels.results",
    "Measurement": "pytest_hfmodels.results",
    "ModelConverter": "pytest_hfmodels.convert.parquet.converter",
    "ConversionConfig": "pytest_hfmodels.convert.parquet.config",
    "ConversionResult": "pytest_hfmodels.convert.parquet.config",
    "load_parquet_weights": "pytest_hfmodels.convert.parquet.load",
    "iter_parquet_weights": "pytest_hfmodels.convert.parquet.load",
    "get_layer": "pytest_hfmodels.convert.parquet.load",
    "ModelFileVerifier": "pytest_hfmodels.convert.onnx.verify",
    "verify_and_get_onnx_model": "pytest_hfmodels.convert.onnx.verify",
}
_ERRORS = (
    "HFModelsError",
    "RegistryError",
    "ModelVerificationError",
    "ModelConversionError",
    "ModelFileNotFoundError",
    "ModelConnectionError",
    "ModelAccessError",
    "WeightsFileError",
)
_LAZY.update({name: "pytest_hfmodels.errors" for name in _ERRORS})

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pytest_hfmodels' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


#: the generated suite's package: its asserts are the users' test assertions, rewritten as pytest does
_SUITE = "pytest_hfmodels.suite"


def _leave_pytests_rewriting() -> None:
    """Unmark the package in pytest's assertion-rewriting hooks, all but `_SUITE`.

    pytest rewrites the asserts of every module of a distribution declaring a `pytest11` entry
    point, so that a plugin's helpers fail with introspected messages, and caches the rewritten
    code only where it may write bytecode. With PYTHONDONTWRITEBYTECODE set (this project's CI
    image, many containers) or a read-only site-packages, each pytest run then parses, rewrites
    and compiles every module of the package it imports, ignoring the `.pyc` files pip compiled:
    10-20 ms of an unrelated one-test run's 250-300 ms for the dozen modules the plugin loads,
    which then executed 16% more instructions than without the plugin, 4% once the package left
    the rewriter (the installed wheel, benchmarks/bench_plugin_load.py); and again for every
    runner, source and store module of a run that uses it. The package's asserts are internal invariants (type
    narrowing), not test assertions: nothing is lost. This module itself went through the
    rewriter already, as it is what imports first.

    pytest offers no public way to take a name back (`pytest.register_assert_rewrite` only adds),
    so this edits the hook's private set, where it finds one: another pytest, or `--assert=plain`
    (no hook), leaves the package rewritten as before, slower, not wrong. An editable install
    lists no package for pytest to mark: nothing to do. tests/packaging/test_wheel.py checks it.
    """
    package = __name__
    for finder in sys.meta_path:  # one hook per live pytest config (pytester nests them)
        marked = getattr(finder, "_must_rewrite", None)
        decided = getattr(finder, "_marked_for_rewrite_cache", None)
        if not isinstance(marked, set) or not isinstance(decided, dict) or package not in marked:
            continue
        marked.discard(package)
        marked.add(_SUITE)
        for name in [name for name in decided if name == package or name.startswith(package + ".")]:
            del decided[name]


_leave_pytests_rewriting()
