"""The verification API the original tools offered: is a model file on the Hub, fetch it, or convert it.

A thin layer over `hub.client.HubClient`: the Hub rules (retries, offline, errors) live there. Conversion is
pluggable: a ``converter`` callable, by default `from_hub.convert_for_verifier` (torch and the
exporter are imported only when a file is actually missing and converted).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from pytest_hfmodels.cache.admin import CleanPolicy, clean_if_needed
from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.convert.onnx.from_hub import convert_for_verifier
from pytest_hfmodels.errors import ModelConversionError, ModelFileNotFoundError
from pytest_hfmodels.hub.client import HubClient, RetryPolicy

#: the original tools' registry of verified files, in the cache root
REGISTRY_FILE = "model_registry.json"


class VerifiedFiles:
    """The original tools' `model_registry.json`: {"models": {"<model_id>:<file_path>": {local_path,
    source, exists, verified_at, file_size_bytes}}, "version"}: one entry per file verified, written
    under a file lock and renamed into place, so concurrent verifiers never lose an entry."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, model_id: str, file_path: str, local_path: Path, source: str) -> None:
        from filelock import FileLock

        now = datetime.now(timezone.utc).isoformat()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            data = self.read()
            entry = {
                "model_id": model_id,
                "file_path": file_path,
                "local_path": str(local_path),
                "source": source,
                "exists": local_path.is_file(),
                "verified_at": now,
                "last_accessed": now,
                "file_size_bytes": local_path.stat().st_size if local_path.is_file() else 0,
            }
            data["models"][f"{model_id}:{file_path}"] = entry
            staged = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            staged.write_text(json.dumps(data, indent=2), encoding="utf-8")
            os.replace(staged, self.path)

    def read(self) -> dict[str, Any]:
        """The registry; an absent or unreadable one reads as empty (it is rebuilt as files are verified)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("models"), dict):
                return data
        except (OSError, ValueError):
            pass
        return {"models": {}, "version": "1.0", "created_at": datetime.now(timezone.utc).isoformat()}


@dataclass(frozen=True)
class VerifiedFile:
    """A model file the verifier produced, and where it came from."""

    path: Path
    source: str  #: huggingface (the repo's own file) | pytorch_conversion
    converted_now: bool  #: this call converted it (not the cache, not the Hub)


class ConvertedFile(Protocol):
    """What a converter may return instead of a path: the file and whether this call made it."""

    @property
    def path(self) -> Path: ...

    @property
    def converted_now(self) -> bool: ...


class Converter(Protocol):
    """Produces a file the Hub does not have (an ONNX export, say): returns its local path (made
    by this call), or a `ConvertedFile` that says whether it was made now or found in a cache."""

    def __call__(
        self,
        *,
        model_id: str,
        file_path: str,
        model_type: str | None,
        conversion_config: Mapping[str, Any] | None,
        verifier: ModelFileVerifier,
    ) -> str | os.PathLike[str] | ConvertedFile: ...


class ModelFileVerifier:
    """Checks, fetches and, when allowed, converts model files of Hub repos.

    The original tools' signature: `cache_dir` is where conversions go (this tool's cache root,
    default `cache.store.default_cache_root()`); `registry_file` the JSON registry of every file
    verified (default `<cache_dir>/model_registry.json`); `huggingface_token` for gated and
    private repos (default HF_TOKEN); retries; and the clean-up the cache gets when it is built:
    above `cleanup_threshold` GB, entries idle `cleanup_min_age_days` are removed, oldest first
    (never a folder this tool did not make). Hub downloads go to the HF cache (`hub_cache_dir`).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        registry_file: str | os.PathLike[str] | None = None,
        huggingface_token: str | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        cleanup_threshold: float | None = None,
        cleanup_min_age_days: float | None = None,
        *,
        token: str | None = None,
        offline: bool | None = None,
        converter: Converter | None = None,
        revision: str | None = None,
        allow_conversion: bool = True,
        client: HubClient | None = None,
        hub_cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if token is not None and huggingface_token is not None and token != huggingface_token:
            raise TypeError("ModelFileVerifier: token and huggingface_token differ: give one")
        policy = RetryPolicy.from_env(max_retries=max_retries, base_delay=retry_delay)
        self.client = client or HubClient(
            token=huggingface_token or token, policy=policy, offline=offline, cache_dir=hub_cache_dir
        )
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
        self.registry = VerifiedFiles(
            Path(registry_file).expanduser() if registry_file else self.cache_dir / REGISTRY_FILE
        )
        self.revision = revision
        self.allow_conversion = allow_conversion
        self._converter = converter
        if cleanup_threshold is not None or cleanup_min_age_days is not None:
            clean_if_needed(self.cache_dir, CleanPolicy.from_env(cleanup_threshold, cleanup_min_age_days))

    def __repr__(self) -> str:
        return (
            f"ModelFileVerifier(cache_dir={str(self.cache_dir)!r}, client={self.client!r}, "
            f"revision={self.revision!r})"
        )

    @property
    def converter(self) -> Converter | None:
        if not self.allow_conversion:
            return None
        return self._converter if self._converter is not None else convert_for_verifier

    def verify_model_exists(self, model_id: str, file_path: str) -> bool:
        """True if the file is on the Hub; ModelConnectionError if the Hub cannot tell."""
        return self.client.file_exists(model_id, file_path, self.revision)

    def get_model_metadata(self, model_id: str) -> dict[str, Any]:
        """model_type, architectures, files, has_onnx, onnx_files, sha, tags, from_cache, as plain data."""
        metadata = self.client.model_metadata(model_id, self.revision).as_dict()
        return {key: list(value) if isinstance(value, tuple) else value for key, value in metadata.items()}

    def verify_model_for_benchmark(
        self,
        model_id: str,
        file_path: str,
        model_type: str | None = None,
        conversion_config: Mapping[str, Any] | None = None,
    ) -> tuple[Path, bool]:
        """(local path, was_converted): the Hub's file if it has one, else a converted one;
        `was_converted` is true only when this call converted (not when the cache had it)."""
        found = self.verified_file(model_id, file_path, model_type, conversion_config)
        return found.path, found.converted_now

    def verified_file(
        self,
        model_id: str,
        file_path: str,
        model_type: str | None = None,
        conversion_config: Mapping[str, Any] | None = None,
    ) -> VerifiedFile:
        """The file and where it came from: the Hub (huggingface) or a conversion (pytorch_conversion)."""
        lookup = self.client.lookup(model_id, file_path, self.revision)
        if lookup.exists:
            path = self.client.download(model_id, file_path, self.revision)
            self.registry.add(model_id, file_path, path, "huggingface")
            return VerifiedFile(path, "huggingface", converted_now=False)
        converter = self.converter if lookup.missing == "file" else None
        if converter is None:
            hint = "" if lookup.missing != "file" or self.allow_conversion else " (conversion not enabled)"
            raise ModelFileNotFoundError(f"{lookup.reason or 'not found'}{hint}")
        try:
            produced = converter(
                model_id=model_id,
                file_path=file_path,
                model_type=model_type,
                conversion_config=conversion_config,
                verifier=self,
            )
        except ModelConversionError:
            raise
        except Exception as error:  # the converter is not ours: name what it was asked to do
            raise ModelConversionError(
                f"converting repo {model_id!r} to {file_path!r} failed: {type(error).__name__}: {error}"
            ) from error
        if isinstance(produced, (str, os.PathLike)):
            path, converted = Path(produced), True
        else:
            # was_converted says what this call did: a conversion served from the cache was not made now
            path, converted = Path(produced.path), produced.converted_now
        self.registry.add(model_id, file_path, path, "pytorch_conversion")
        return VerifiedFile(path, "pytorch_conversion", converted_now=converted)

    def batch_verify_models(
        self, models: Iterable[Mapping[str, Any]], max_workers: int = 4, *, check_only: bool = False
    ) -> list[dict[str, Any]]:
        """One result dict per model, in input order, verified in parallel; a failure never stops the rest."""
        entries = list(models)
        with ThreadPoolExecutor(
            max_workers=max(1, max_workers), thread_name_prefix="hfmodels-verify"
        ) as pool:
            return list(pool.map(lambda entry: self._verify_entry(entry, check_only), entries))

    def _verify_entry(self, entry: Mapping[str, Any], check_only: bool) -> dict[str, Any]:
        model_id, file_path = str(entry.get("model_id", "")), str(entry.get("file_path", ""))
        result: dict[str, Any] = {
            "model_id": model_id,
            "file_path": file_path,
            "model_type": entry.get("model_type"),
            "conversion_config": entry.get("conversion_config"),
            "success": False,
            "local_path": None,
            "was_converted": False,
            "source": None,  #: huggingface | pytorch_conversion: where the file came from
            "checked_only": check_only,
            "error": None,
            "error_class": None,
        }
        try:
            if not model_id or not file_path:
                raise ValueError("each entry needs 'model_id' and 'file_path'")
            if check_only:
                lookup = self.client.lookup(model_id, file_path, self.revision)
                result.update(success=lookup.exists, error=lookup.reason)
                result["error_class"] = None if lookup.exists else ModelFileNotFoundError.__name__
                return result
            found = self.verified_file(
                model_id, file_path, entry.get("model_type"), entry.get("conversion_config")
            )
            result.update(
                success=True,
                local_path=str(found.path),
                was_converted=found.converted_now,
                source=found.source,
            )
        except Exception as error:  # reported per model: one bad entry must not hide the others' results
            result.update(error=str(error), error_class=type(error).__name__)
        return result


def verify_and_get_onnx_model(
    model_id: str, onnx_path: str, conversion_config: Mapping[str, Any] | None = None
) -> tuple[Path, bool]:
    """(local path, was_converted) of an ONNX file of ``model_id``, converting when the Hub lacks it."""
    return ModelFileVerifier().verify_model_for_benchmark(
        model_id, onnx_path, conversion_config=conversion_config
    )
