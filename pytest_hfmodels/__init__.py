"""pytest-hfmodels: which Hugging Face models work on which hardware and runtime, measured.

Public names are imported lazily so that `import pytest_hfmodels` (and loading the plugin)
stays free of torch and the runtimes.
"""

from __future__ import annotations

import importlib
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
