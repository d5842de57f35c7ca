"""Where a model's files come from: a random-weight build (tiny, random, or a Hub model's config
under --hf-weights random), a Python package, a local folder or the Hub."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pytest_hfmodels.errors import DependencyMissingError, ModelSourceError, ModelUnavailableError
from pytest_hfmodels.model_folder import read_config
from pytest_hfmodels.registry.model import ModelEntry
from pytest_hfmodels.registry.vocabulary import BUILT_SOURCES
from pytest_hfmodels.sources.random_weights import hub_random_model_dir
from pytest_hfmodels.sources.tiny import built_model_dir


@dataclass(frozen=True)
class ModelFiles:
    """A folder holding config.json and weights, and what its config says the model is."""

    path: Path
    model_type: str | None  #: from config.json, never from the model's name
    architectures: tuple[str, ...]


#: what a run needs of a Hub repo: config, safetensors weights, tokenizer and processor files
#: (not the TensorFlow, Flax, ONNX or .bin copies many repos also hold)
HUB_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken")


def resolve_model_files(
    entry: ModelEntry,
    cache_root: Path,
    offline: bool,
    *,
    full_check: bool = False,
    random_weights: bool = False,
    registry_entries: Iterable[ModelEntry] = (),
) -> ModelFiles:
    """`full_check`: rehash a cached built model's files before use (a damaged one is rebuilt).
    `random_weights` (--hf-weights random, Hub entries only): the entry's config.json with random
    weights and the tokenizer of a tiny or random entry of its family among `registry_entries`."""
    if random_weights and entry.source != "hub":
        raise ModelSourceError(
            f"model {entry.key!r}: --hf-weights random replaces only a Hub model's weights"
        )
    if entry.source in BUILT_SOURCES:
        path = built_model_dir(entry, cache_root, full_check=full_check)
    elif random_weights:
        path = hub_random_model_dir(entry, registry_entries, cache_root, offline, full_check=full_check)
    elif entry.source == "package":
        path = _package_dir(entry)
    elif entry.source == "local":
        path = _local_dir(entry)
    else:
        path = _hub_dir(entry, offline)
    return read_model_files(path, entry.key)


def read_model_files(path: Path, what: str) -> ModelFiles:
    try:
        config = read_config(path)
    except ModelSourceError as exc:
        raise ModelSourceError(f"model {what!r}: {exc}") from exc
    return ModelFiles(path, config.get("model_type"), tuple(config.get("architectures") or ()))


def _package_dir(entry: ModelEntry) -> Path:
    assert entry.package is not None  # the registry loader requires it for source: package
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissingError(entry.package, f"model {entry.key!r}")
    return Path(next(iter(spec.submodule_search_locations))) / (entry.package_path or "")


def _local_dir(entry: ModelEntry) -> Path:
    path = Path(entry.id).expanduser()
    if not path.is_absolute():
        path = Path(entry.registry_file).parent / path
    if not path.is_dir():
        raise ModelSourceError(
            f"model {entry.key!r} ({entry.registry_file}): local folder {path} does not exist"
        )
    return path


def _hub_dir(entry: ModelEntry, offline: bool) -> Path:
    from pytest_hfmodels.hub import client as hub

    cached = hub.cached_snapshot_path(entry.id, entry.revision, allow_patterns=HUB_PATTERNS)
    if cached is not None:
        return cached
    if offline:
        raise ModelUnavailableError(
            f"model {entry.key!r} ({entry.id}): offline and not in the Hugging Face cache"
        )
    return hub.HubClient(offline=offline).snapshot(
        entry.id, revision=entry.revision, allow_patterns=HUB_PATTERNS
    )
