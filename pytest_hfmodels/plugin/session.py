"""Per-pytest-session state of the plugin, kept in `config.stash`, never in module globals.

The session itself is made on first use (`plugin_session`): at configure when the run asked for
the plugin (`activation`), else when a test first requests an `hf_*` fixture, else never. Within
it everything is lazy too, and its modules are imported where they are first needed, so that
loading the plugin into a run that never touches a model costs next to nothing. The stash keys
and their accessors live here too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_hfmodels.cases.expand import Case
    from pytest_hfmodels.cases.hardware import Hardware
    from pytest_hfmodels.cases.settings import Settings
    from pytest_hfmodels.execution.case_record import CaseRecord
    from pytest_hfmodels.execution.pool import RunnerPool
    from pytest_hfmodels.hub.outage import HubOutage
    from pytest_hfmodels.registry.model import ModelEntry
    from pytest_hfmodels.registry.select import Registry
    from pytest_hfmodels.sources.resolve import ModelFiles


def _new_hub_outage() -> HubOutage:
    from pytest_hfmodels.hub.outage import HubOutage

    return HubOutage.for_new_session()


@dataclass
class PluginSession:
    settings: Settings
    hardware_dicts: list[dict[str, Any]] | None = None  #: from the controller, under xdist
    workers: int = 1  #: processes running cases side by side (xdist workers), 1 without xdist
    #: the session's record of a dead Hub; under xdist the controller's, shared with every worker
    hub_outage: HubOutage = field(default_factory=_new_hub_outage)
    #: this process picked the record's path, so it removes the record at session end
    owns_hub_outage: bool = True
    _registry: Registry | None = None
    _hardware: Hardware | None = None
    _cases: list[Case] | None = None
    _entries: tuple[ModelEntry, ...] | None = None
    _files: dict[str, ModelFiles] = field(default_factory=dict)
    _runners: RunnerPool | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from pytest_hfmodels.registry.loader import load_registries

            self._registry = load_registries(self.settings.registry_dirs)
        return self._registry

    @property
    def hardware(self) -> Hardware:
        if self._hardware is None:
            from pytest_hfmodels.cases.hardware import Hardware, detect

            dicts = self.hardware_dicts
            if dicts is not None:
                self._hardware = Hardware.from_dicts(dicts)
            else:
                self._hardware = detect(accelerators=self.settings.hardware != "cpu")
        return self._hardware

    @property
    def hardware_detected(self) -> bool:
        return self._hardware is not None

    @property
    def entries(self) -> tuple[ModelEntry, ...]:
        """What the selection names: registry entries, the custom set, Hub ids and folders."""
        if self._entries is None:
            from pytest_hfmodels.cases.selection import selected_entries

            self._entries = selected_entries(self.registry, self.settings)
        return self._entries

    @property
    def cases(self) -> list[Case]:
        if self._cases is None:
            from pytest_hfmodels.cases.expand import expand

            s = self.settings
            # The accelerator probe is a child process that mostly waits for it: it runs while
            # this one reads the registries, instead of before or after.
            probe = self._hardware_in_background()
            entries = self.entries
            if probe is not None:
                probe.join()
            self._cases = expand(entries, s, self.hardware)
        return self._cases

    def _hardware_in_background(self) -> threading.Thread | None:
        """Detection started in a thread, unless the hardware is known already (or was sent)."""
        if self._hardware is not None or self.hardware_dicts is not None:
            return None
        # Should detection fail there, `self.hardware` detects again in this thread after join.
        thread = threading.Thread(target=lambda: self.hardware, name="hfmodels-hardware", daemon=True)
        thread.start()
        return thread

    @property
    def cases_computed(self) -> bool:
        return self._cases is not None

    @property
    def runners(self) -> RunnerPool:
        """Loaded runners reused per process; made when the first case needs one."""
        if self._runners is None:
            from pytest_hfmodels.execution.pool import RunnerPool
            from pytest_hfmodels.runners.threads import available_cpus, thread_budget

            s = self.settings
            self._runners = RunnerPool(
                s.pool_memory_mb,
                s.cache_dir,
                verify_cache=s.verify_cache,
                onnx_files=s.onnx_files,
                offline=s.offline,
                threads=thread_budget(s.threads, self.workers, available_cpus()),
            )
        return self._runners

    def close(self) -> None:
        """Session end: loaded runners closed, and the Hub outage record removed by its owner."""
        if self._runners is not None:
            self._runners.close()
        if self.owns_hub_outage:
            self.hub_outage.clear()

    @property
    def cache_root(self) -> Path:
        from pytest_hfmodels.cache.store import default_cache_root

        return self.settings.cache_dir or default_cache_root()

    def model_files(self, case: Case) -> ModelFiles:
        key = case.entry.key
        if key not in self._files:
            self._files[key] = self._resolve(case.entry, case.random_weights)
        return self._files[key]

    def _resolve(self, entry: ModelEntry, random_weights: bool) -> ModelFiles:
        """The model's files; once the Hub was found dead, only what the HF cache holds, at once."""
        from pytest_hfmodels.errors import ModelConnectionError, ModelUnavailableError
        from pytest_hfmodels.sources.resolve import resolve_model_files

        down = self.hub_outage.reason() if entry.source == "hub" else None
        try:
            return resolve_model_files(
                entry,
                self.cache_root,
                self.settings.offline or down is not None,
                full_check=self.settings.verify_cache,
                random_weights=random_weights,
                registry_entries=self.registry.entries,
            )
        except ModelUnavailableError:
            if down is None:
                raise
            raise ModelUnavailableError(f"model {entry.key!r} ({entry.id}): {down}") from None
        except ModelConnectionError as exc:  # retries spent: the later cases need not spend them again
            from pytest_hfmodels.hub.client import hub_endpoint

            self.hub_outage.record(hub_endpoint(), str(exc).splitlines()[0])
            raise ModelUnavailableError(
                f"model {entry.key!r} ({entry.id}): {self.hub_outage.reason()}"
            ) from None


SESSION_KEY = pytest.StashKey[PluginSession]()
CASE_RECORD_KEY: pytest.StashKey[CaseRecord] = pytest.StashKey()
#: workerinput key carrying the controller's hardware detection to xdist workers
WORKERINPUT_HARDWARE = "hfmodels_hardware"
#: workerinput key carrying the path of the session's Hub outage record to xdist workers
WORKERINPUT_HUB_OUTAGE = "hfmodels_hub_outage"


def plugin_session(config: pytest.Config) -> PluginSession:
    """The run's session, made on first use (a bad option or ini value is a usage error)."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        session = config.stash[SESSION_KEY] = _new_session(config)
    return session


def existing_session(config: pytest.Config) -> PluginSession | None:
    """The run's session if something made it; never makes one."""
    return config.stash.get(SESSION_KEY, None)


def _new_session(config: pytest.Config) -> PluginSession:
    from pytest_hfmodels.plugin.options import read_settings

    settings = read_settings(config)
    workerinput = getattr(config, "workerinput", {})
    # From xdist's own workerinput, not PYTEST_XDIST_WORKER_COUNT: a pytest started inside a
    # worker inherits that variable without being a worker.
    workers = int(workerinput.get("workercount", 1))
    outage = workerinput.get(WORKERINPUT_HUB_OUTAGE)
    session = PluginSession(settings, hardware_dicts=workerinput.get(WORKERINPUT_HARDWARE), workers=workers)
    if outage:  # the controller's record, shared by every worker; the controller removes it
        from pytest_hfmodels.hub.outage import HubOutage

        session.hub_outage, session.owns_hub_outage = HubOutage(Path(outage)), False
    return session


def detected_hardware(config: pytest.Config) -> list[dict[str, Any]] | None:
    """The hardware dicts, if this session detected (or received) them; never detects."""
    session = existing_session(config)
    if session is None or not session.hardware_detected:
        return None
    return session.hardware.to_dicts()
