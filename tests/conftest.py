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


@pytest.fixture(scope="session", autouse=True)
def _extension_modules_loaded() -> None:
    """Extension modules load once per process. pytester's in-process runs restore sys.modules
    after each test, dropping whatever a test imported; a later import of an extension module
    then fails. Importing them in a session fixture, before any pytester snapshot, keeps them
    loaded for the whole session; in a fixture rather than at module level so that running the
    generated suite from this directory (which loads this conftest) does not pay for them."""
    import duckdb  # noqa: F401
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401
    import pyarrow  # noqa: F401
    import safetensors.torch  # noqa: F401
    import tokenizers  # noqa: F401
    import torch  # noqa: F401


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


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """When these tests themselves run under `pytest -n`, the pytest runs they start must not
    inherit the worker's variables and take themselves for xdist workers."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every built-in tiny model, built once per session.

    Session-scoped on purpose: it runs before any function-scoped `pytester`, so torch and
    transformers modules loaded by the builds are in place before pytester snapshots sys.modules
    (a module torch registers operators from cannot be imported a second time).
    """
    from pytest_hfmodels.registry.loader import load_registries
    from pytest_hfmodels.sources.tiny import built_model_dir

    root = tmp_path_factory.mktemp("tiny-models")
    return {e.key: built_model_dir(e, root) for e in load_registries([]).entries if e.source == "tiny"}


@pytest.fixture(scope="session")
def nan_bert_dir(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of bert-tiny whose word embeddings are all NaN: a real model with broken weights."""
    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path_factory.mktemp("nan-bert")
    for item in tiny_model_dirs["bert-tiny"].iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    weights = load_file(broken / "model.safetensors")
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    return broken
