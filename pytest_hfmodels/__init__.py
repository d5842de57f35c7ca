"""pytest-hfmodels: which Hugging Face models work on which hardware and runtime, measured.

Public names are imported lazily so that `import pytest_hfmodels` (and loading the plugin)
stays free of torch and the runtimes.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Case": "pytest_hfmodels.cases",
    "ModelEntry": "pytest_hfmodels.registry",
    "load_registries": "pytest_hfmodels.registry",
    "ResultRow": "pytest_hfmodels.results",
    "Measurement": "pytest_hfmodels.results",
    "ModelConverter": "pytest_hfmodels.convert.parquet",
    "ConversionConfig": "pytest_hfmodels.convert.parquet_config",
    "ConversionResult": "pytest_hfmodels.convert.parquet_config",
    "load_parquet_weights": "pytest_hfmodels.convert.parquet_load",
    "iter_parquet_weights": "pytest_hfmodels.convert.parquet_load",
    "get_layer": "pytest_hfmodels.convert.parquet_load",
    "ModelFileVerifier": "pytest_hfmodels.verify",
    "verify_and_get_onnx_model": "pytest_hfmodels.verify",
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
