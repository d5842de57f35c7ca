"""Build step of the wheel: the built-in registries are copied into the package.

`model_registries/` at the top of the repository is their one source (a team reads and edits them
there); a wheel carries them as `pytest_hfmodels/registry/builtin/*.yaml`, where the loader looks
first. A copy in the build, not a symlink in the tree: a checkout without symlinks (Windows) builds
the same wheel. Everything else about the package is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

REGISTRIES = Path(__file__).resolve().parent / "model_registries"


class BuildWithRegistries(build_py):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib, "pytest_hfmodels", "registry", "builtin")
        self.mkpath(str(target))
        for source in sorted(REGISTRIES.glob("*.yaml")):
            self.copy_file(str(source), str(target / source.name))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        target = Path(self.build_lib, "pytest_hfmodels", "registry", "builtin")
        copied = [str(target / source.name) for source in sorted(REGISTRIES.glob("*.yaml"))]
        return [*super().get_outputs(include_bytecode), *copied]


setup(cmdclass={"build_py": BuildWithRegistries})
