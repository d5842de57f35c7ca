"""Loading the plugin imports no heavy library (the plugin must keep `pytest --help` fast)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "onnxruntime", "openvino")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_importing_the_plugin_imports_no_heavy_library() -> None:
    assert _modules_after("import pytest_hfmodels.plugin") == set()


def test_list_models_and_collection_import_no_heavy_library() -> None:
    code = (
        "import pytest, contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert pytest.main(['--hf-list-models', '-p', 'no:cacheprovider']) == 0\n"
        "    args = ['--hf-family', 'bert', '--collect-only', '-q', '-p', 'no:cacheprovider']\n"
        "    assert pytest.main(args) == 0\n"
    )
    assert _modules_after(code) == set()
