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


# A user's one-test project recording how the installed package's modules were loaded: through
# pytest's assertion rewriter (`AssertionRewritingHook`) or from their bytecode.
LOADERS_TEST = """
import json, sys

def test_loaders():
    import pytest_hfmodels.errors, pytest_hfmodels.suite
    names = ["pytest_hfmodels", "pytest_hfmodels.plugin", "pytest_hfmodels.errors",
             "pytest_hfmodels.plugin.options", "pytest_hfmodels.plugin.fixtures", "pytest_hfmodels.suite"]
    loaded = {name: type(sys.modules[name].__loader__).__name__ for name in names if name in sys.modules}
    with open("loaders.json", "w") as out:
        json.dump(loaded, out)
"""


def test_the_installed_package_loads_from_bytecode_where_pytest_would_rewrite_it(
    installed: Path, tmp_path: Path
) -> None:
    """pytest marks every module of a plugin's distribution for assertion rewriting and, without a
    bytecode cache, rewrites them again in every run. The package's `__init__` shows the mark (it
    is rewritten: it imports first); it takes the rest back, all but the generated suite, whose
    asserts users read."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_loaders.py").write_text(LOADERS_TEST)
    env = {**os.environ, "PYTHONPATH": str(installed), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_loaders.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    loaded = json.loads((tmp_path / "loaders.json").read_text())
    rewritten = {name for name, loader in loaded.items() if loader == "AssertionRewritingHook"}
    assert rewritten == {"pytest_hfmodels", "pytest_hfmodels.suite"}, loaded
    assert loaded["pytest_hfmodels.plugin"] == loaded["pytest_hfmodels.plugin.options"] == "SourceFileLoader"
    # pip compiled the modules when it installed them: SourceFileLoader reads that bytecode
    assert (installed / "pytest_hfmodels" / "plugin" / "__pycache__").is_dir()
