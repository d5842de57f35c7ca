"""Loaded models reused across the cases of one process, released least recently used first
when the models held together would pass a memory budget.

Under xdist all of a model's cases go to one worker (`plugin.xdist.ModelScheduling`), so with a
pool a model is loaded once however many modes, devices and batch sizes it is tested in.
"""

from __future__ import annotations

import importlib
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_hfmodels.cases.expand import Case
from pytest_hfmodels.cases.hardware import Hardware
from pytest_hfmodels.execution.measure import current_rss_mb
from pytest_hfmodels.modes import MODES
from pytest_hfmodels.runners import Runner, runner_class
from pytest_hfmodels.runners.exported import ExportedModelRunner
from pytest_hfmodels.sources.resolve import ModelFiles


@dataclass(frozen=True)
class Loaded:
    """A runner in the pool and what loading it cost."""

    runner: Runner
    load_time_s: float  #: wall time of the load, an ONNX conversion made during it excluded
    memory_mb: float  #: what the pool counts against its budget: model_load_mb, at least weights_mb
    #: RSS after the load minus before, the mode's packages imported first; None off Linux
    model_load_mb: float | None = None
    weights_mb: float | None = None  #: parameters and buffers, or the ONNX file and its external data


def default_budget_mb() -> float:
    """A quarter of physical memory: room for the models plus the work done with them."""
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20 / 4
    return 4096.0


class RunnerPool:
    def __init__(
        self,
        budget_mb: float | None = None,
        cache_root: Path | None = None,
        threads: int | None = None,
        *,
        verify_cache: bool = False,
        onnx_files: tuple[str, ...] = (),
        offline: bool = False,
    ) -> None:
        self.budget_mb = default_budget_mb() if budget_mb is None else budget_mb
        self.cache_root = cache_root  #: where runners that convert (onnxruntime, openvino) cache files
        self.verify_cache = verify_cache  #: rehash their cached conversions before use
        #: a Hub model's own ONNX files the exported modes use before converting (--hf-onnx-file)
        self.onnx_files = onnx_files
        self.offline = offline
        self.threads = threads  #: CPU threads per runtime (threads.thread_budget); None: their default
        self._loaded: OrderedDict[tuple[str, str, str], Loaded] = OrderedDict()
        self.released: list[tuple[str, str, str]] = []  #: eviction order, for reports and tests

    @property
    def held_mb(self) -> float:
        return sum(item.memory_mb for item in self._loaded.values())

    def get(self, case: Case, hardware: Hardware, files: ModelFiles) -> tuple[Loaded, bool]:
        """The case's runner, loaded, with what its load cost; and whether an earlier case loaded it."""
        key = (case.entry.key, case.mode, case.hardware)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key], True
        device = hardware.get(case.hardware)
        assert device is not None  # the hf_device fixture skipped absent devices before this
        runner = runner_class(case.mode)(case.entry, device)
        runner.threads = self.threads
        if hasattr(runner, "cache_root"):
            runner.cache_root = self.cache_root or runner.cache_root
        if hasattr(runner, "verify_cache"):
            runner.verify_cache = self.verify_cache
        if isinstance(runner, ExportedModelRunner):
            # Only a Hub model run with its own weights can use the repo's file: random weights
            # (--hf-weights random) are not what the repo exported.
            own_weights = case.entry.source == "hub" and not case.random_weights
            runner.hub_repo = case.entry.id if own_weights else None
            runner.onnx_files, runner.offline = self.onnx_files, self.offline
        # torch, transformers and the runtime take hundreds of MB the first time; they are the
        # process's, not the model's, so they are imported before the model's load is measured.
        for module in MODES[case.mode].packages:
            importlib.import_module(module)
        if "transformers" in MODES[case.mode].packages:
            # Every model class imports this base (and torch's distributed and compiler parts
            # with it) on first use: some 100 MB that the first model loaded would be charged.
            importlib.import_module("transformers.modeling_utils")
        rss_before, start = current_rss_mb(), time.perf_counter()
        runner.load(files.path)
        load_time = time.perf_counter() - start - conversion_seconds(runner)
        rss_after = current_rss_mb()
        grew = rss_after - rss_before if rss_before is not None and rss_after is not None else None
        weights = weights_mb(runner)
        loaded = self._loaded[key] = Loaded(
            runner,
            load_time,
            max(grew or 0.0, weights or 0.0),
            model_load_mb=None if grew is None else max(grew, 0.0),
            weights_mb=weights,
        )
        self._release_over_budget(keep=key)
        return loaded, False

    def _release_over_budget(self, keep: tuple[str, str, str]) -> None:
        while self.held_mb > self.budget_mb and len(self._loaded) > 1:
            oldest = next(iter(self._loaded))
            if oldest == keep:
                break
            self._loaded.pop(oldest).runner.close()
            self.released.append(oldest)

    def close(self) -> None:
        while self._loaded:
            self._loaded.popitem()[1].runner.close()


def torch_model_of(runner: Runner) -> Any:
    """The PyTorch model a runner holds (directly or in its pipeline), or None."""
    model = getattr(runner, "model", None) or getattr(getattr(runner, "pipe", None), "model", None)
    return model if model is not None and hasattr(model, "parameters") else None


def conversion_seconds(runner: Runner) -> float:
    """Seconds of the load spent converting to ONNX (0 when the export came from the cache)."""
    export = getattr(runner, "onnx", None)
    return float(export.seconds) if export is not None and export.converted_now else 0.0


def weights_mb(runner: Runner) -> float | None:
    """The size of what the runtime runs: the ONNX file and its external data for an exported
    model, else the PyTorch model's parameters and buffers; None when the runner holds neither."""
    export = getattr(runner, "onnx", None)
    if export is not None:
        return float(export.file_size) / 2**20
    model = torch_model_of(runner)
    if model is None:
        return None
    tensors = [*model.parameters(), *model.buffers()]
    return float(sum(t.numel() * t.element_size() for t in tensors)) / 2**20
