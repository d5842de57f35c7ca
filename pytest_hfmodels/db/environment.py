"""Where and with what a test run happened, and the scrubbing that keeps secrets out of storage.

Every stored number is kept next to the environment it was measured in: the command line, the
git commit of the working directory, the host and the versions of the model stack. This module
imports nothing heavy, because the recorder (loaded with the plugin) builds the environment.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

#: distributions whose versions explain a measurement; alternatives are tried in order
VERSIONED_PACKAGES: Mapping[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "transformers": ("transformers",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
    "openvino": ("openvino",),
    "huggingface_hub": ("huggingface_hub",),
    "pytest_hfmodels": ("pytest-hfmodels",),
    "pytest": ("pytest",),
}

#: the shape of a Hugging Face access token
HF_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{10,}")
#: environment variables whose values are tokens, wherever they appear in text
TOKEN_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN")
#: options whose next argument (or `=value`) is a secret
SECRET_OPTIONS = ("--token", "--hf-token", "--use-auth-token")
REDACTED = "***"


def secret_values() -> list[str]:
    """Values of the token environment variables set now, long enough to be real tokens."""
    # Very short values would redact ordinary words; real tokens are long.
    values = (os.environ.get(name) for name in TOKEN_ENV_VARS)
    return [value for value in values if value and len(value) >= 8]


def scrub_secrets(text: str | None) -> str | None:
    """`text` with every Hugging Face token (by shape, or by value of a token env var) redacted."""
    if text is None:
        return None
    for value in secret_values():
        text = text.replace(value, REDACTED)
    return HF_TOKEN_PATTERN.sub(REDACTED, text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """argv with the values of token options and anything shaped like a token redacted."""
    redacted: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            redacted.append(REDACTED)
            hide_next = False
            continue
        option, equals, _ = arg.partition("=")
        if option in SECRET_OPTIONS:
            if equals:
                redacted.append(f"{option}={REDACTED}")
            else:
                redacted.append(arg)
                hide_next = True
            continue
        redacted.append(scrub_secrets(arg) or "")
    return redacted


def _installed_version(distributions: Iterable[str]) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _git_commit(directory: Path) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = completed.stdout.strip()
    return commit if completed.returncode == 0 and commit else None


def _plain_copy(hardware: Sequence[Mapping[str, Any]] | None) -> tuple[Mapping[str, Any], ...]:
    # A JSON round trip keeps only primitives and detaches the copy from the caller's dicts.
    return tuple(json.loads(json.dumps(list(hardware or []), default=str)))


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RunEnvironment:
    """One test run's environment, as stored in `test_runs` and in spill files."""

    #: identity of the run across databases; merging and re-ingesting a run stores it once
    run_uid: str
    started_at: datetime
    finished_at: datetime | None
    command_line: str  #: argv joined, tokens redacted
    git_commit: str | None  #: HEAD of the working directory, None outside a git checkout
    host: str
    python_version: str
    platform: str
    #: installed version per package in VERSIONED_PACKAGES, None where not installed
    package_versions: Mapping[str, str | None] = field(default_factory=dict)
    #: detected hardware as the plugin describes it (primitives only)
    hardware: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def capture(
        cls,
        argv: Sequence[str],
        hardware: Sequence[Mapping[str, Any]] | None,
        *,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        cwd: Path | None = None,
    ) -> RunEnvironment:
        """The environment of this process now; `finished_at` defaults to now."""
        now = _utc_now()
        return cls(
            run_uid=uuid.uuid4().hex,
            started_at=started_at or now,
            finished_at=finished_at or now,
            command_line=shlex.join(redact_argv(argv)),
            git_commit=_git_commit(cwd or Path.cwd()),
            host=socket.gethostname(),
            python_version=platform.python_version(),
            platform=platform.platform(),
            package_versions={name: _installed_version(dists) for name, dists in VERSIONED_PACKAGES.items()},
            hardware=_plain_copy(hardware),
        )

    def finished(self, hardware: Sequence[Mapping[str, Any]] | None) -> RunEnvironment:
        """This run, finished now, on `hardware` (the rest was captured when it started)."""
        return dataclasses.replace(self, finished_at=_utc_now(), hardware=_plain_copy(hardware))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (datetimes as ISO 8601 text)."""
        data = dataclasses.asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        data["package_versions"] = dict(self.package_versions)
        data["hardware"] = [dict(item) for item in self.hardware]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunEnvironment:
        fields = dict(data)
        fields["started_at"] = datetime.fromisoformat(fields["started_at"])
        finished = fields.get("finished_at")
        fields["finished_at"] = datetime.fromisoformat(finished) if finished else None
        fields["package_versions"] = dict(fields.get("package_versions") or {})
        fields["hardware"] = tuple(fields.get("hardware") or ())
        return cls(**fields)
