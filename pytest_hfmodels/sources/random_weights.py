"""--hf-weights random: a Hub model's configuration with seeded random weights, built offline.

Only the repo's config.json is fetched (through hub.client: offline, the HF cache serves it). The
tokenizer, processors and generation settings are those of a tiny or random entry of the same
family (`tokenizer_donor`), and the config's special-token ids become that tokenizer's;
everything else, vocabulary size included, stays the Hub's. The model is built once per config
content into the cache's `random` folder, like a registry's `random` entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_hfmodels.errors import ModelSourceError
from pytest_hfmodels.model_folder import read_config
from pytest_hfmodels.registry.model import ModelEntry, TinySpec
from pytest_hfmodels.sources.tiny import cached_build

#: config.json keys that describe the file or the stored weights rather than the model: the
#: random model is built in fp32 and its saved config says so
_FILE_KEYS = ("_name_or_path", "transformers_version", "architectures", "torch_dtype", "dtype")


def hub_random_model_dir(
    entry: ModelEntry,
    entries: Iterable[ModelEntry],
    cache_root: Path,
    offline: bool,
    *,
    full_check: bool = False,
) -> Path:
    """The folder of `entry`'s Hub configuration with random weights and the tokenizer of a tiny
    or random entry of its family among `entries`."""
    from pytest_hfmodels.hub.client import HubClient

    what = f"model {entry.key!r} ({entry.id}, --hf-weights random)"
    config_file = HubClient(offline=offline).download(entry.id, "config.json", revision=entry.revision)
    try:
        config = read_config(config_file.parent)
        donor = tokenizer_donor(entry, config.get("model_type"), entries)
        assert donor.build_spec is not None  # tokenizer_donor picks built entries only
        spec = random_spec(config, donor.build_spec)
    except ModelSourceError as exc:
        raise ModelSourceError(f"{what}: {exc}") from exc
    details = {
        "model": entry.key,
        "architecture": entry.architecture,
        "registry_file": entry.registry_file,
        "config_of": f"{entry.id}@{entry.revision or 'main'}",
        "tokenizer_of": donor.key,
    }
    return cached_build(
        "random", entry.key, entry.architecture, spec, cache_root, details, what=what, full_check=full_check
    )


def tokenizer_donor(entry: ModelEntry, model_type: Any, entries: Iterable[ModelEntry]) -> ModelEntry:
    """The built entry (tiny or random) of `entry`'s family whose tokenizer and processors `entry`
    borrows: one of the same model type (config.json's, never a name's) if there is one, a
    `random` entry before a tiny one (its image processor or feature extractor is sized for a
    real model: 224-pixel images, 64 mel bins), then the small set first."""

    def rank(e: ModelEntry) -> tuple[bool, bool, bool, str]:
        spec = e.build_spec
        return (
            spec is None or spec.model_type != model_type,
            e.source != "random",
            "small" not in e.sets,
            e.key,
        )

    built = [e for e in entries if e.family == entry.family and e.build_spec is not None]
    if not built:
        raise ModelSourceError(
            f"the tokenizer comes from a tiny or random entry of family {entry.family!r}, which has none"
        )
    return min(built, key=rank)


def random_spec(config: Mapping[str, Any], donor: TinySpec) -> TinySpec:
    """A build spec of `config` (a config.json) with `donor`'s tokenizer, processors, generation
    settings and seed; the config's special-token ids are replaced by the donor's "$token" ones."""
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ModelSourceError("config.json has no model_type")
    values = {k: v for k, v in config.items() if k not in (*_FILE_KEYS, "model_type")}
    return dataclasses.replace(
        donor,
        model_type=model_type,
        config=MappingProxyType(_with_token_ids(values, donor.config)),
    )


def _with_token_ids(config: Mapping[str, Any], donor: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with every value of `donor` that names tokenizer tokens ("$<s>", lists of them),
    in sub-configs too where `config` has the same sub-config."""
    merged = dict(config)
    for key, value in donor.items():
        if isinstance(value, Mapping):
            if isinstance(merged.get(key), Mapping):
                merged[key] = _with_token_ids(merged[key], value)
        elif _names_tokens(value):
            merged[key] = value
    return merged


def _names_tokens(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_names_tokens(v) for v in value)
    return isinstance(value, str) and value.startswith("$")
