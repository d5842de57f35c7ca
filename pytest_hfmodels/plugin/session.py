"""Per-pytest-session state of the plugin, kept in `config.stash`, never in module globals.

Everything is computed lazily, so `pytest --help` and runs that never touch a model case
pay for none of it. The stash keys and their accessors live here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.cases.expand import Case, expand
from pytest_hfmodels.cases.hardware import Hardware, detect
from pytest_hfmodels.cases.settings import Settings
from pytest_hfmodels.errors import ModelConnectionError, ModelUnavailableError
from pytest_hfmodels.execution.case_record import CaseRecord
from pytest_hfmodels.execution.pool import RunnerPool
from pytest_hfmodels.hub.outage import HubOutage
from pytest_hfmodels.registry.custom_set import load_custom_set
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.registry.model import ModelEntry
from pytest_hfmodels.registry.select import Registry, select
from pytest_hfmodels.sources.resolve import ModelFiles, resolve_model_files


@dataclass
class PluginSession:
    settings: Settings
    hardware_dicts: list[dict[str, Any]] | None = None  #: from the controller, under xdist
    workers: int = 1  #: processes running cases side by side (xdist workers), 1 without xdist
    _registry: Registry | None = None
    _hardware: Hardware | None = None
    _cases: list[Case] | None = None
    _files: dict[str, ModelFiles] = field(default_factory=dict)
    runners: RunnerPool = field(default_factory=RunnerPool)
    #: the session's record of a dead Hub; under xdist the controller's, shared with every worker
    hub_outage: HubOutage = field(default_factory=HubOutage.for_new_session)

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
            if s.model_set == "custom" and s.models_file is not None:
                entries = select(
                    load_custom_set(s.models_file, self.registry), s.families, s.models, "custom"
                )
            else:
                entries = self.registry.select(s.families, s.models, s.model_set)
            self._cases = expand(entries, s, self.hardware)
        return self._cases

    @property
    def cases_computed(self) -> bool:
        return self._cases is not None

    @property
    def cache_root(self) -> Path:
        return self.settings.cache_dir or default_cache_root()

    def model_files(self, case: Case) -> ModelFiles:
        key = case.entry.key
        if key not in self._files:
            self._files[key] = self._resolve(case.entry, case.random_weights)
        return self._files[key]

    def _resolve(self, entry: ModelEntry, random_weights: bool) -> ModelFiles:
        """The model's files; once the Hub was found dead, only what the HF cache holds, at once."""
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
CASE_RECORD_KEY = pytest.StashKey[CaseRecord]()
#: workerinput key carrying the controller's hardware detection to xdist workers
WORKERINPUT_HARDWARE = "hfmodels_hardware"
#: workerinput key carrying the path of the session's Hub outage record to xdist workers
WORKERINPUT_HUB_OUTAGE = "hfmodels_hub_outage"


def plugin_session(config: pytest.Config) -> PluginSession:
    return config.stash[SESSION_KEY]


def detected_hardware(config: pytest.Config) -> list[dict[str, Any]] | None:
    """The hardware dicts, if this session detected (or received) them; never detects."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.hardware_detected:
        return None
    return session.hardware.to_dicts()
