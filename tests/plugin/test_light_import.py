"""Loading the plugin imports no heavy library (the plugin must keep `pytest --help` fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "onnxruntime", "openvino")


def _modules_after(code: str, cwd: Path) -> set[str]:
    """Heavy modules loaded after `code` runs in a fresh interpreter in `cwd` (a user's project,
    not this repository, whose own test conftest imports them on purpose)."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=cwd)
    return set(done.stdout.split())


def test_importing_the_plugin_imports_no_heavy_library(tmp_path: Path) -> None:
    assert _modules_after("import pytest_hfmodels.plugin", tmp_path) == set()


def test_list_models_and_collection_import_no_heavy_library(tmp_path: Path) -> None:
    code = (
        "import pytest, contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert pytest.main(['--hf-list-models', '-p', 'no:cacheprovider']) == 0\n"
        "    args = ['--hf-family', 'bert', '--collect-only', '-q', '-p', 'no:cacheprovider']\n"
        "    assert pytest.main(args) == 0\n"
    )
    assert _modules_after(code, tmp_path) == set()
