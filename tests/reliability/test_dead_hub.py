"""A dead Hub is one decision per session: the first case spends the retries, the rest skip at once.

Real pytest processes on the generated suite against the local hub server, answering 503 to every
request (a Hub that is down behind its load balancer) or not listening at all; one model of the
registry is in the HF cache and must keep running.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_hfmodels.hub.client import HubClient
from pytest_hfmodels.sources.resolve import HUB_PATTERNS

if TYPE_CHECKING:
    from tests.hubserver import HubServer

pytestmark = pytest.mark.slow  # real pytest runs of a real tiny model
pytest_plugins = ("tests.hubserver",)

MAX_RETRIES = 2
REGISTRY = """
family: hubbert
task: fill-mask
modality: text
architecture: BertForMaskedLM
models:
  cached: {id: org/cached, source: hub, sets: [small]}
  gone-1: {id: org/gone-1, source: hub, sets: [small]}
  gone-2: {id: org/gone-2, source: hub, sets: [small]}
  gone-3: {id: org/gone-3, source: hub, sets: [small]}
"""


@pytest.fixture
def project(hub_env: HubServer, tiny_model_dirs: dict[str, Path], tmp_path: Path) -> Path:
    """A registry of four Hub models, one of them (a real bert-tiny) already in the HF cache."""
    bert = tiny_model_dirs["bert-tiny"]
    hub_env.add_repo("org/cached", {p.name: p.read_bytes() for p in bert.iterdir() if p.is_file()})
    HubClient().snapshot("org/cached", allow_patterns=list(HUB_PATTERNS))
    folder = tmp_path / "project"
    (folder / "registries").mkdir(parents=True)
    (folder / "registries" / "hubbert.yaml").write_text(REGISTRY)
    return folder


def run(project: Path, endpoint: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HFMODELS_RETRY_MAX_RETRIES": str(MAX_RETRIES),
        "HFMODELS_RETRY_BASE_DELAY": "0.01",
        "HFMODELS_RETRY_REQUEST_TIMEOUT": "2",
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        f"--hf-registry={project / 'registries'}",
        "--hf-family=hubbert",
        "--hf-mode=from_pretrained",
        "--hf-batch-sizes=1",
        "--hf-seq-lengths=8",
        "--hf-verify-only",
        "--hf-no-db",
        "-p",
        "no:cacheprovider",
        "-rs",
        *extra,
    ]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)


def test_503_everywhere_costs_one_retry_budget_and_cached_models_still_run(
    project: Path, hub_env: HubServer
) -> None:
    hub_env.faults.fail(503, times=None)
    before = hub_env.count()
    done = run(project, hub_env.url)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "1 passed, 3 skipped" in output
    reason = f"Hub unreachable at {hub_env.url}, not in the HF cache"
    assert output.count(reason) == 3 and "Traceback" not in output
    # The first uncached model spent one operation's attempts; the other two asked nothing.
    assert hub_env.count() - before == MAX_RETRIES + 1


def test_503_everywhere_under_xdist_is_shared_by_the_workers(project: Path, hub_env: HubServer) -> None:
    hub_env.faults.fail(503, times=None)
    before = hub_env.count()
    done = run(project, hub_env.url, "-n", "2")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "1 passed, 3 skipped" in output
    # Each worker may be first before the other's record lands; never one budget per model.
    assert hub_env.count() - before <= 2 * (MAX_RETRIES + 1)


def test_a_hub_not_listening_skips_in_one_line(project: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run(project, f"http://127.0.0.1:{port}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "1 passed, 3 skipped" in output and "Traceback" not in output
    skips = [line for line in output.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 3 and all(f"Hub unreachable at http://127.0.0.1:{port}" in s for s in skips)
