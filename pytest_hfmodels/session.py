"""Per-pytest-session state of the plugin, kept in `config.stash`, never in module globals.

Everything is computed lazily, so `pytest --help` and runs that never touch a model case
pay for none of it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import default_cache_root
from .cases import Case, expand
from .hardware import Hardware, detect
from .registry import Registry, load_registries
from .runners import Runner, runner_class
from .settings import Settings
from .source import ModelFiles, resolve_model_files

#: how many loaded models a worker keeps for reuse by later cases
DEFAULT_POOL_SIZE = 2


@dataclass
class PluginSession:
    settings: Settings
    hardware_dicts: list[dict[str, Any]] | None = None  #: from the controller, under xdist
    _registry: Registry | None = None
    _hardware: Hardware | None = None
    _cases: list[Case] | None = None
    _files: dict[str, ModelFiles] = field(default_factory=dict)
    runners: RunnerPool = field(default_factory=lambda: RunnerPool(DEFAULT_POOL_SIZE))

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = load_registries(self.settings.registry_dirs)
        return self._registry

    @property
    def hardware(self) -> Hardware:
        if self._hardware is None:
            dicts = self.hardware_dicts
            self._hardware = Hardware.from_dicts(dicts) if dicts is not None else detect()
        return self._hardware

    @property
    def hardware_detected(self) -> bool:
        return self._hardware is not None

    @property
    def cases(self) -> list[Case]:
        if self._cases is None:
            s = self.settings
            entries = self.registry.select(s.families, s.models, s.model_set)
            self._cases = expand(entries, s, self.hardware)
        return self._cases

    @property
    def cache_root(self) -> Path:
        return self.settings.cache_dir or default_cache_root()

    def model_files(self, case: Case) -> ModelFiles:
        key = case.entry.key
        if key not in self._files:
            self._files[key] = resolve_model_files(case.entry, self.cache_root, self.settings.offline)
        return self._files[key]


class RunnerPool:
    """Loaded runners reused across the cases of one process, least recently used released first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._loaded: OrderedDict[tuple[str, str, str], Runner] = OrderedDict()
        self.load_times: dict[tuple[str, str, str], float] = {}

    def get(self, case: Case, hardware: Hardware, files: ModelFiles) -> tuple[Runner, float | None]:
        """The case's runner, loaded; and its load time in seconds when it was loaded now."""
        import time

        key = (case.entry.key, case.mode, case.hardware)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key], None
        device = hardware.get(case.hardware)
        assert device is not None  # the hf_device fixture skipped absent devices before this
        runner = runner_class(case.mode)(case.entry, device)
        start = time.perf_counter()
        runner.load(files.path)
        load_time = time.perf_counter() - start
        self._loaded[key] = runner
        while len(self._loaded) > self.capacity:
            _, oldest = self._loaded.popitem(last=False)
            oldest.close()
        return runner, load_time

    def close(self) -> None:
        while self._loaded:
            self._loaded.popitem()[1].close()
