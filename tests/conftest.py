"""Shared set-up of the project's own tests.

Tiny models are built into one cache folder per test session (HFMODELS_CACHE), so pytester
runs reuse them; the Hugging Face cache is an empty temporary folder, so nothing a developer
downloaded before can make a test pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    root = tmp_path_factory.mktemp("caches")
    saved = {k: os.environ.get(k) for k in ("HFMODELS_CACHE", "HF_HOME", "HF_HUB_CACHE", "HF_TOKEN")}
    os.environ["HFMODELS_CACHE"] = str(root / "hfmodels")
    os.environ["HF_HOME"] = str(root / "hf_home")
    os.environ["HF_HUB_CACHE"] = str(root / "hf_home" / "hub")
    os.environ.pop("HF_TOKEN", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
