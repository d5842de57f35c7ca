"""Our only gateway to the Hugging Face Hub: existence, metadata, downloads, all through huggingface_hub.

Settings are read from the environment when a `HubClient` is built, not when a module is imported:
huggingface_hub fixes ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` at its import, so the
client passes endpoint, cache folder and local-only mode explicitly on every call. Every network
call goes through `retry.with_retries`; offline, answers come from the local HF cache only and
say so (``from_cache=True``, or `ModelNotCachedError` "offline and not cached").
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from huggingface_hub import HfApi, hf_hub_download, snapshot_download, try_to_load_from_cache
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.file_download import HfFileMetadata, get_hf_file_metadata, hf_hub_url, repo_folder_name

from pytest_hfmodels.errors import HFModelsError, ModelNotCachedError, ModelVerificationError
from pytest_hfmodels.hub.paths import repo_file_problem
from pytest_hfmodels.hub.retry import Failure, FailureKind, HubTarget, RetryPolicy, with_retries
from pytest_hfmodels.model_folder import read_config

__all__ = [
    "FileLookup",
    "HubClient",
    "ModelMetadata",
    "RetryPolicy",
    "cached_snapshot_path",
    "hub_cache_dir",
    "hub_endpoint",
]

T = TypeVar("T")

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_MISSING_KINDS: dict[FailureKind, Literal["repo", "revision", "file"]] = {
    FailureKind.REPO_MISSING: "repo",
    FailureKind.REVISION_MISSING: "revision",
    FailureKind.FILE_MISSING: "file",
}


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_cache_dir() -> Path:
    """The HF cache folder the environment asks for now (HF_HUB_CACHE, else HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(hf_constants.HF_HUB_CACHE)


def offline_from_env() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE_VALUES


@dataclass(frozen=True)
class FileLookup:
    """Whether one file exists, and if not, what is missing: the repo, the revision or the file."""

    repo_id: str
    filename: str
    revision: str
    exists: bool
    missing: Literal["repo", "revision", "file"] | None = None
    commit_sha: str | None = None
    size: int | None = None
    #: answered from the local cache (offline) rather than by the Hub
    from_cache: bool = False
    #: why it does not exist, naming repo, revision and file
    reason: str | None = None


@dataclass(frozen=True)
class ModelMetadata:
    repo_id: str
    revision: str
    sha: str | None
    #: from config.json, never guessed from the name
    model_type: str | None
    architectures: tuple[str, ...]
    files: tuple[str, ...]
    tags: tuple[str, ...]
    #: read from the local cache (offline): files lists only what is cached
    from_cache: bool = False
    pipeline_tag: str | None = None  #: the task the Hub lists the model under; None offline

    @property
    def onnx_files(self) -> tuple[str, ...]:
        return tuple(name for name in self.files if name.endswith(".onnx"))

    @property
    def has_onnx(self) -> bool:
        return bool(self.onnx_files)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "has_onnx": self.has_onnx, "onnx_files": self.onnx_files}


class HubClient:
    """Hub access with retries, timeouts and our errors; offline, the local cache only."""

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        policy: RetryPolicy | None = None,
        offline: bool | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.endpoint = (endpoint or hub_endpoint()).rstrip("/")
        # None lets huggingface_hub fall back to a token saved by `hf auth login`.
        self._token = token if token is not None else (os.environ.get("HF_TOKEN") or None)
        self.policy = policy if policy is not None else RetryPolicy.from_env()
        self.offline = offline_from_env() if offline is None else offline
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else hub_cache_dir()
        self._api = HfApi(endpoint=self.endpoint, token=self._token, library_name="pytest-hfmodels")

    def __repr__(self) -> str:
        return (
            f"HubClient(endpoint={self.endpoint!r}, offline={self.offline}, "
            f"cache_dir={str(self.cache_dir)!r}, authenticated={self._token is not None})"
        )

    def lookup(self, repo_id: str, filename: str, revision: str | None = None) -> FileLookup:
        """Ask the Hub (one HEAD, retried) or, offline, the cache whether ``filename`` exists."""
        _check_repo_file(repo_id, filename)
        rev = revision or "main"
        if self.offline:
            cached = try_to_load_from_cache(repo_id, filename, cache_dir=self.cache_dir, revision=rev)
            if isinstance(cached, str):
                size = Path(cached).stat().st_size
                return FileLookup(repo_id, filename, rev, True, None, Path(cached).parent.name, size, True)
            if cached is not None:  # the cache remembers the Hub said this file does not exist
                reason = f"file {filename!r} not in repo {repo_id!r} at revision {rev!r} (cached answer)"
                return FileLookup(repo_id, filename, rev, False, "file", from_cache=True, reason=reason)
            raise self._not_cached(repo_id, rev, filename)

        def missing(failure: Failure) -> FileLookup | None:
            kind = _MISSING_KINDS.get(failure.kind)
            if kind is None:
                return None
            reason = (
                f"{kind} missing: repo {repo_id!r}, revision {rev!r}, file {filename!r} ({failure.cause})"
            )
            return FileLookup(repo_id, filename, rev, False, kind, reason=reason)

        def found(timeout: float) -> FileLookup:
            head = self._head(repo_id, filename, revision, timeout)
            return FileLookup(repo_id, filename, rev, True, None, head.commit_hash, head.size)

        target = HubTarget(self.endpoint, repo_id, revision, filename)
        return with_retries(found, self.policy, target, answer=missing)

    def cached_file(self, repo_id: str, filename: str, revision: str | None = None) -> Path | None:
        """The file's path in the HF cache when a download left it there; None otherwise. Asks
        no one: a dead Hub does not stop a file fetched before from being used."""
        _check_repo_file(repo_id, filename)
        cached = try_to_load_from_cache(
            repo_id, filename, cache_dir=self.cache_dir, revision=revision or "main"
        )
        return Path(cached) if isinstance(cached, str) else None

    def file_exists(self, repo_id: str, filename: str, revision: str | None = None) -> bool:
        """False when the repo, revision or file is missing; raises when the Hub cannot answer."""
        return self.lookup(repo_id, filename, revision).exists

    def model_metadata(self, repo_id: str, revision: str | None = None) -> ModelMetadata:
        rev = revision or "main"
        if self.offline:
            return self._cached_metadata(repo_id, rev)
        target = HubTarget(self.endpoint, repo_id, revision)
        info = self._retry(
            lambda timeout: self._api.model_info(repo_id, revision=revision, timeout=timeout), target
        )
        files = tuple(sorted(sibling.rfilename for sibling in info.siblings or ()))
        config: dict[str, Any] = info.config if isinstance(info.config, dict) else {}
        if "model_type" not in config and "config.json" in files:
            # The Hub copies config.json into model info only for some repos: read the file itself.
            config = _config_or_empty(self.download(repo_id, "config.json", revision=revision).parent)
        metadata = _metadata(repo_id, rev, info.sha, config, files, tuple(info.tags or ()), from_cache=False)
        tag = getattr(info, "pipeline_tag", None)
        return dataclasses.replace(metadata, pipeline_tag=tag) if isinstance(tag, str) else metadata

    repo_info = model_metadata

    def download(self, repo_id: str, filename: str, revision: str | None = None) -> Path:
        """The local path of ``filename``, fetched into the HF cache if it is not there yet."""
        _check_repo_file(repo_id, filename)
        if self.offline:
            try:
                return Path(str(hf_hub_download(repo_id, filename, revision=revision, **self._hf_options())))
            except LocalEntryNotFoundError:
                raise self._not_cached(repo_id, revision or "main", filename) from None

        def fetch(timeout: float) -> Path:
            # Our own HEAD first: when hf_hub_download's HEAD fails and nothing is cached, it retries
            # with fixed delays of 1 to 8 s that no setting shortens; ours fail fast and retry by policy.
            self._head(repo_id, filename, revision, timeout)
            options = self._hf_options()
            return Path(
                str(hf_hub_download(repo_id, filename, revision=revision, etag_timeout=timeout, **options))
            )

        return self._retry(fetch, HubTarget(self.endpoint, repo_id, revision, filename))

    def snapshot(
        self, repo_id: str, revision: str | None = None, allow_patterns: Sequence[str] | None = None
    ) -> Path:
        """The local snapshot folder of a revision, holding the files matching ``allow_patterns``."""
        patterns = list(allow_patterns) if allow_patterns is not None else None
        if self.offline:
            try:
                return Path(
                    snapshot_download(
                        repo_id, revision=revision, allow_patterns=patterns, **self._hf_options()
                    )
                )
            except LocalEntryNotFoundError:
                raise self._not_cached(repo_id, revision or "main", None) from None
        target = HubTarget(self.endpoint, repo_id, revision)
        # Resolve first under our policy: snapshot_download's own listing retries with fixed 1-8 s delays.
        self._retry(lambda timeout: self._api.model_info(repo_id, revision=revision, timeout=timeout), target)

        def fetch(timeout: float) -> Path:
            options = self._hf_options()
            return Path(
                snapshot_download(
                    repo_id, revision=revision, allow_patterns=patterns, etag_timeout=timeout, **options
                )
            )

        return self._retry(fetch, target)

    def _hf_options(self) -> dict[str, Any]:
        return {
            "cache_dir": self.cache_dir,
            "endpoint": self.endpoint,
            "token": self._token,
            "library_name": "pytest-hfmodels",
            "local_files_only": self.offline,
        }

    def _head(self, repo_id: str, filename: str, revision: str | None, timeout: float) -> HfFileMetadata:
        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)
        return get_hf_file_metadata(
            url, token=self._token, timeout=timeout, endpoint=self.endpoint, retry_on_errors=False
        )

    def _retry(self, operation: Callable[[float], T], target: HubTarget) -> T:
        return with_retries(operation, self.policy, target)

    def _cached_metadata(self, repo_id: str, revision: str) -> ModelMetadata:
        folder = _cached_snapshot_folder(self.cache_dir, repo_id, revision)
        if folder is None:
            raise self._not_cached(repo_id, revision, None)
        files = tuple(sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()))
        config = _config_or_empty(folder) if "config.json" in files else {}
        return _metadata(repo_id, revision, folder.name, config, files, (), from_cache=True)

    def _not_cached(self, repo_id: str, revision: str, filename: str | None) -> ModelNotCachedError:
        what = f"file {filename!r} of repo {repo_id!r}" if filename else f"repo {repo_id!r}"
        return ModelNotCachedError(
            f"offline and not cached: {what} at revision {revision!r} is not in the Hugging Face cache "
            f"{str(self.cache_dir)!r} (HF_HUB_OFFLINE or offline=True forbids asking the Hub)"
        )


def cached_snapshot_path(
    repo_id: str,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_patterns: Sequence[str] | None = None,
) -> Path | None:
    """The cached snapshot folder of a revision, None if the files matching ``allow_patterns``
    (all files when None) are not cached or known to be incomplete."""
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=Path(cache_dir or hub_cache_dir()),
            local_files_only=True,
            allow_patterns=list(allow_patterns) if allow_patterns is not None else None,
        )
    except LocalEntryNotFoundError:  # IncompleteSnapshotError included
        return None
    return Path(folder)


def _cached_snapshot_folder(cache_dir: Path, repo_id: str, revision: str) -> Path | None:
    """The snapshot folder of the HF cache layout (refs/<revision> names its commit), even if partial."""
    storage = cache_dir / repo_folder_name(repo_id=repo_id, repo_type="model")
    sha = revision
    if not _COMMIT_SHA.match(revision):
        ref = storage / "refs" / revision
        if not ref.is_file():
            return None
        sha = ref.read_text().strip()
    folder = storage / "snapshots" / sha
    return folder if folder.is_dir() else None


def _metadata(
    repo_id: str,
    revision: str,
    sha: str | None,
    config: dict[str, Any],
    files: tuple[str, ...],
    tags: tuple[str, ...],
    *,
    from_cache: bool,
) -> ModelMetadata:
    model_type = config.get("model_type")
    architectures = config.get("architectures") or ()
    return ModelMetadata(
        repo_id=repo_id,
        revision=revision,
        sha=sha,
        model_type=model_type if isinstance(model_type, str) else None,
        architectures=tuple(str(name) for name in architectures),
        files=files,
        tags=tags,
        from_cache=from_cache,
    )


def _check_repo_file(repo_id: str, filename: str) -> None:
    """No request, cached or not, for a path that would leave the repo (see `paths`)."""
    problem = repo_file_problem(filename)
    if problem is not None:
        raise ModelVerificationError(f"repo {repo_id!r}: {problem}")


def _config_or_empty(folder: Path) -> dict[str, Any]:
    try:
        return read_config(folder)
    except HFModelsError:
        return {}  # an unreadable config.json leaves model_type unknown, it is not a Hub failure
