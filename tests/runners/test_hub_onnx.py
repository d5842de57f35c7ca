"""The Hub's own ONNX first: real pytest runs against the local hub server, any Hub id without YAML.

A repo publishing an ONNX file made outside this project (a plain `torch.onnx.export` here) is used
after checking it against PyTorch; a repo without one is converted; a repo whose ONNX is of other
weights fails as a numerical mismatch naming the difference; a gated repo needs its token; a Hub
that is down still serves the file it gave before from the HF cache. Rows and the tracking
contract (model_onnx_registry, the macros) say which happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pytest

from pytest_hfmodels.cache.manifest import MANIFEST_FILE

if TYPE_CHECKING:
    from tests.hubserver import HubServer

pytestmark = pytest.mark.slow  # real pytest runs of real tiny models
pytest_plugins = ("tests.hubserver",)
TOKEN = "hf_GATEDtoken789"


def plain_export(model_dir: Path, out: Path, *, shift: float = 0.0) -> bytes:
    """bert-tiny's fill-mask graph as anyone would export it, its embeddings moved by seeded noise of
    scale `shift` (other weights of the same architecture)."""
    import torch
    import transformers

    model = transformers.BertForMaskedLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        noise = torch.randn(
            model.bert.embeddings.word_embeddings.weight.shape, generator=torch.Generator().manual_seed(0)
        )
        model.bert.embeddings.word_embeddings.weight += shift * noise

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    ids = torch.ones(2, 7, dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        Logits().eval(),
        (ids, torch.ones_like(ids)),
        str(out),
        input_names=["input_ids", "attention_mask"],  # no token_type_ids: fewer inputs than the spec
        output_names=["logits"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": axes},
        opset_version=17,
        dynamo=False,
    )
    return out.read_bytes()


@pytest.fixture
def repos(hub_env: HubServer, tiny_model_dirs: dict[str, Path], tmp_path: Path) -> HubServer:
    bert = tiny_model_dirs["bert-tiny"]
    files = {p.name: p.read_bytes() for p in bert.iterdir() if p.is_file() and p.name != MANIFEST_FILE}
    hub_env.add_repo("org/bert-onnx", {**files, "onnx/model.onnx": plain_export(bert, tmp_path / "a.onnx")})
    hub_env.add_repo("org/bert-plain", files, pipeline_tag="fill-mask")
    other = plain_export(bert, tmp_path / "b.onnx", shift=0.5)
    hub_env.add_repo("org/bert-other-onnx", {**files, "model.onnx": other})
    hub_env.add_repo("org/bert-gated", files, access_token=TOKEN)
    return hub_env


def run(cwd: Path, endpoint: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    # A cache of its own: a conversion made by another test of the same weights is not this run's.
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HFMODELS_RETRY_MAX_RETRIES": "1",
        "HFMODELS_CACHE": str(cwd / "cache"),
    }
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--hf-mode=onnxruntime",
        "--hf-batch-sizes=1",
        "--hf-seq-lengths=8",
        "--hf-verify-only",
        "--hf-db=results.duckdb",
        "-p",
        "no:cacheprovider",
        "-rfs",
        *args,
    ]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def rows(db: Path) -> dict[str, tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        found = con.execute(
            "SELECT h.model_id, h.status, h.error_class, p.onnx_source, p.onnx_conversion_status, "
            "p.onnx_cache_hit FROM hardware_compatibility h LEFT JOIN performance_results p "
            "USING (run_id, case_id) WHERE h.run_id = (SELECT max(run_id) FROM test_runs)"
        ).fetchall()
    finally:
        con.close()
    return {row[0]: row[1:] for row in found}


def test_the_hubs_onnx_is_used_checked_or_converted(repos: HubServer, tmp_path: Path) -> None:
    models = "--hf-model=org/bert-onnx,org/bert-plain,org/bert-other-onnx"
    result = run(tmp_path, repos.url, models)
    assert result.returncode == 1, result.stdout[-3000:]
    db = tmp_path / "results.duckdb"
    found = rows(db)
    assert found["org/bert-onnx"] == ("pass", None, "huggingface", "original", False)
    assert found["org/bert-plain"] == ("pass", None, "pytorch_conversion", "converted", False)
    status, error_class, *_ = found["org/bert-other-onnx"]
    assert (status, error_class) == ("fail", "numerical_mismatch")
    assert (
        "Hub ONNX file 'model.onnx' disagrees with the model's PyTorch weights: max abs diff" in result.stdout
    )
    con = duckdb.connect(str(db), read_only=True)
    status_of = dict(con.execute("SELECT model_id, onnx_status FROM model_onnx_registry").fetchall())
    answers = {m: con.execute("SELECT get_onnx_status(?)", [m]).fetchone() for m in status_of}
    con.close()
    assert status_of["org/bert-onnx"] == "available_on_hub" and answers["org/bert-onnx"] == (
        "available_on_hub",
    )
    assert status_of["org/bert-plain"] == "available_converted" and answers["org/bert-plain"] == (
        "converted",
    )

    # The Hub goes down: the file it gave before comes from the HF cache, the check still runs.
    repos.faults.fail(503, times=None)
    again = run(tmp_path, repos.url, "--hf-model=org/bert-onnx", "--hf-offline")
    assert again.returncode == 0, again.stdout[-3000:]
    assert rows(db)["org/bert-onnx"] == ("pass", None, "huggingface", "original", True)


def test_a_gated_repo_needs_its_token(repos: HubServer, tmp_path: Path) -> None:
    refused = run(tmp_path, repos.url, "--hf-model=org/bert-gated")
    assert refused.returncode != 0 and "org/bert-gated" in refused.stdout + refused.stderr
    assert TOKEN not in refused.stdout + refused.stderr
    allowed = run(tmp_path, repos.url, "--hf-model=org/bert-gated", token=TOKEN)
    assert allowed.returncode == 0, allowed.stdout[-3000:]
    assert TOKEN not in allowed.stdout + allowed.stderr
    con = duckdb.connect(str(tmp_path / "results.duckdb"), read_only=True)
    stored = json.dumps(con.execute("SELECT * FROM test_runs").fetchall(), default=str)
    con.close()
    assert TOKEN not in stored
