"""Keys into `config.stash` and `item.stash`, and the accessors other modules use."""

from __future__ import annotations

from typing import Any

import pytest

from .record import CaseRecord
from .session import PluginSession

SESSION_KEY = pytest.StashKey[PluginSession]()
CASE_RECORD_KEY = pytest.StashKey[CaseRecord]()
#: workerinput key carrying the controller's hardware detection to xdist workers
WORKERINPUT_HARDWARE = "hfmodels_hardware"


def plugin_session(config: pytest.Config) -> PluginSession:
    return config.stash[SESSION_KEY]


def detected_hardware(config: pytest.Config) -> list[dict[str, Any]] | None:
    """The hardware dicts, if this session detected (or received) them; never detects."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.hardware_detected:
        return None
    return session.hardware.to_dicts()
