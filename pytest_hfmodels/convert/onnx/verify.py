"""The verification API the original tools offered: is a model file on the Hub, fetch it, or convert it.

A thin layer over `hub.client.HubClient`: the Hub rules (retries, offline, errors) live there. Conversion is
pluggable: a ``converter`` callable, by default `from_hub.convert_for_verifier` (torch and the
exporter are imported only when a file is actually missing and converted).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from pytest_hfmodels.convert.onnx.from_hub import convert_for_verifier
from pytest_hfmodels.errors import ModelConversionError, ModelFileNotFoundError
from pytest_hfmodels.hub.client import HubClient, RetryPolicy


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
    """Checks, fetches and, when allowed, converts model files of Hub repos."""

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        token: str | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        offline: bool | None = None,
        converter: Converter | None = None,
        *,
        revision: str | None = None,
        allow_conversion: bool = True,
        client: HubClient | None = None,
    ) -> None:
        policy = RetryPolicy.from_env(max_retries=max_retries, base_delay=retry_delay)
        self.client = client or HubClient(token=token, policy=policy, offline=offline, cache_dir=cache_dir)
        self.revision = revision
        self.allow_conversion = allow_conversion
        self._converter = converter

    def __repr__(self) -> str:
        return f"ModelFileVerifier(client={self.client!r}, revision={self.revision!r})"

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
        lookup = self.client.lookup(model_id, file_path, self.revision)
        if lookup.exists:
            return self.client.download(model_id, file_path, self.revision), False
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
            return Path(produced), True
        # was_converted says what this call did: a conversion served from the cache was not made now
        return Path(produced.path), produced.converted_now

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
            "success": False,
            "local_path": None,
            "was_converted": False,
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
            path, converted = self.verify_model_for_benchmark(
                model_id, file_path, entry.get("model_type"), entry.get("conversion_config")
            )
            result.update(success=True, local_path=str(path), was_converted=converted)
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
