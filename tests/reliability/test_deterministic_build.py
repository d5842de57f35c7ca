"""Every file of a tiny build is byte-identical across fresh builds in fresh processes.

The builds run in two separate interpreters with different PYTHONHASHSEED and thread counts: the
`tokenizers` trainers walk hash maps seeded at random per process, which once gave bert-tiny a
different vocabulary order, and so a different tokenisation, on every machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.registry.vocabulary import TOKENIZER_KINDS

pytestmark = pytest.mark.slow  # builds real (tiny) models, twice

#: builds every tiny model of the built-in registries into argv[1]/<key>/ and prints, per model,
#: the sha256 of each file it wrote
BUILD = """
import hashlib, json, sys
from pathlib import Path
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.sources.tiny import build_random_model

root = Path(sys.argv[1])
digests = {}
for entry in load_registries([]).entries:
    if entry.source == "tiny":
        out = root / entry.key
        out.mkdir(parents=True)
        build_random_model(entry.architecture, entry.tiny, out)
        digests[entry.key] = {
            str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()
        }
print(json.dumps(digests))
"""

TINY_ENTRIES = {e.key: e for e in load_registries([]).entries if e.source == "tiny"}


def _build_in_fresh_process(root: Path, hash_seed: str, threads: str) -> dict[str, dict[str, str]]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "RAYON_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    digests: dict[str, dict[str, str]] = json.loads(done.stdout.splitlines()[-1])
    return digests


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict[str, str]], ...]:
    return (
        _build_in_fresh_process(tmp_path_factory.mktemp("first"), hash_seed="1", threads="1"),
        _build_in_fresh_process(tmp_path_factory.mktemp("second"), hash_seed="2", threads="2"),
    )


def test_the_builds_cover_every_tokenizer_kind() -> None:
    kinds = {e.tiny.tokenizer.kind for e in TINY_ENTRIES.values() if e.tiny and e.tiny.tokenizer}
    assert kinds == set(TOKENIZER_KINDS)


@pytest.mark.parametrize("key", sorted(TINY_ENTRIES))
def test_a_tiny_build_is_byte_identical_in_another_process(
    key: str, two_builds: tuple[dict[str, dict[str, str]], ...]
) -> None:
    first, second = (build[key] for build in two_builds)
    assert "config.json" in first and "model.safetensors" in first
    assert first == second
