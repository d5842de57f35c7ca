"""Hub models through the plugin: downloaded from a hub-compatible server, then the cache answers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import ONE_SHAPE

pytestmark = pytest.mark.slow  # builds and runs real models

if TYPE_CHECKING:
    from tests.hubserver import HubServer

pytest_plugins = ("tests.hubserver",)

REGISTRY = """\
family: served
task: text-generation
modality: text
architecture: GPT2LMHeadModel
models:
  served-gpt2:
    id: test-org/gpt2-tiny
    source: hub
    sets: [small]
"""


def test_hub_model_downloads_once_then_runs_offline_from_the_cache(
    tiny_model_dirs: dict[str, Path], pytester: pytest.Pytester, hub_env: HubServer
) -> None:
    folder = tiny_model_dirs["gpt2-tiny"]
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    files["onnx/model.onnx"] = b"a file a PyTorch run does not need"
    hub_env.add_repo("test-org/gpt2-tiny", files)
    registries = pytester.mkdir("regs")
    (registries / "served.yaml").write_text(REGISTRY)
    args = (
        f"--hf-registry={registries}",
        "--hf-family",
        "served",
        "--hf-mode=pipeline,from_pretrained",
        "--hf-scenario=forward",
        "--hf-verify-only",
        *ONE_SHAPE,
        "-rs",
    )

    online = pytester.runpytest(*args)
    online.assert_outcomes(passed=2)
    asked = [r.path for r in hub_env.requests]
    assert any(path.endswith("/model.safetensors") for path in asked)
    assert not any(path.endswith("model.onnx") for path in asked)  # only what a run needs is fetched

    offline = pytester.runpytest(*args, "--hf-offline")
    offline.assert_outcomes(passed=2)
    assert len(hub_env.requests) == len(asked)  # the cache answered: the server saw nothing new
