"""The wheel as a user installs it: built from the repository's files, installed outside the repo
with `pip install --no-deps --target`, imported from there, and carrying every built-in registry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import BUILTIN_FAMILIES

REPO = Path(__file__).resolve().parents[2]

LIST_FAMILIES = """
import json, pytest_hfmodels
from pytest_hfmodels.registry.loader import builtin_registry_dir, load_registries
print(json.dumps({"package": pytest_hfmodels.__file__, "registries": str(builtin_registry_dir()),
                  "families": load_registries([]).families}))
"""


def _clean_copy(target: Path) -> Path:
    """The repository's files as a fresh clone has them: tracked ones and new ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("git and a checkout are needed to copy the repository's files")
    source = _clean_copy(tmp_path_factory.mktemp("source"))
    wheels = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True
    )
    (wheel,) = wheels.glob("pytest_hfmodels-*.whl")
    target = tmp_path_factory.mktemp("site")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    return target


def test_the_wheel_lists_every_builtin_family_from_outside_the_repo(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(
        [sys.executable, "-c", LIST_FAMILIES],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(result.stdout)
    assert Path(found["package"]).is_relative_to(installed)  # imported from the install, not the repo
    assert Path(found["registries"]) == installed / "pytest_hfmodels" / "registry" / "builtin"
    assert set(found["families"]) == BUILTIN_FAMILIES
    shipped = sorted(p.name for p in (installed / "pytest_hfmodels" / "registry" / "builtin").iterdir())
    assert shipped == sorted(p.name for p in (REPO / "model_registries").glob("*.yaml"))


def test_the_installed_cli_lists_the_registries(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest_hfmodels.cli", "registry", "ls"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    listed = {line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert listed == BUILTIN_FAMILIES
