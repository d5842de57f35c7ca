"""One decision per session that the Hub is down, shared by every process of the session.

The first case that spends its retries on an unreachable Hub records the outage in a small file;
every later case (in this process or another xdist worker) reads it and skips at once when its
model is not in the HF cache, instead of spending the retry budget again. The controller picks the
file's path and hands it to the workers; nothing is created until the Hub is found down.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HubOutage:
    """The session's record of a Hub found unreachable (a file that exists only once it was)."""

    path: Path

    @classmethod
    def for_new_session(cls) -> HubOutage:
        return cls(Path(tempfile.gettempdir()) / f"hfmodels-hub-outage-{os.getpid()}-{uuid.uuid4().hex}.json")

    def record(self, endpoint: str, cause: str) -> None:
        """Mark the Hub at `endpoint` down for the rest of the session (written whole, or not at all)."""
        staged = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        staged.write_text(json.dumps({"endpoint": endpoint, "cause": cause}), encoding="utf-8")
        os.replace(staged, self.path)

    def reason(self) -> str | None:
        """Why the Hub is down for this session, or None while it is not known to be."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        where = f"Hub unreachable at {data['endpoint']}, not in the HF cache"
        return f"{where}; found down this session: {data['cause']}"

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
