"""The layout the issue asks for, held by the package: few root modules, no import cycle between
modules or parts (imports inside functions count), and parts importing only parts before them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.layout import MAX_ROOT_MODULES, analyse


def test_the_package_has_few_root_modules_no_cycles_and_keeps_the_order() -> None:
    layout = analyse()
    assert len(layout.root_modules) <= MAX_ROOT_MODULES, layout.root_modules
    assert layout.module_cycles == ()
    assert layout.part_cycles == ()
    assert layout.order_violations == ()


def _package(root: Path, files: dict[str, str]) -> Path:
    package = root / "pytest_hfmodels"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for parent in path.parent.relative_to(root).parents:
            if parent != Path("."):
                (root / parent / "__init__.py").touch()
        (path.parent / "__init__.py").touch()
    return package


def test_a_cycle_behind_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "registry/loader.py": "def modes():\n    from pytest_hfmodels.runners import pipeline\n",
            "runners/pipeline.py": "from pytest_hfmodels.registry.loader import modes\n",
        },
    )
    layout = analyse(package)
    assert layout.module_cycles == (("pytest_hfmodels.registry.loader", "pytest_hfmodels.runners.pipeline"),)
    assert layout.part_cycles == (("registry", "runners"),)
    assert layout.order_violations == (
        "pytest_hfmodels.registry.loader -> pytest_hfmodels.runners.pipeline "
        "(part registry imports part runners)",
    )


def test_the_script_prints_the_figures_and_fails_on_a_cycle(tmp_path: Path) -> None:
    script = Path(__file__).with_name("layout.py")
    good = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stdout
    figures = json.loads(good.stdout.splitlines()[-1])
    assert figures["root_modules"] <= MAX_ROOT_MODULES
    assert figures["module_cycles"] == figures["part_cycles"] == figures["order_violations"] == 0
    package = _package(
        tmp_path,
        {"cache/store.py": "import pytest_hfmodels.cache.admin\n", "cache/admin.py": "from . import store\n"},
    )
    bad = subprocess.run(
        [sys.executable, str(script), str(package)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert "module cycle: pytest_hfmodels.cache.admin <-> pytest_hfmodels.cache.store" in bad.stdout
