"""The `custom` model set: a file in the original tools' format, turned into hub entries.

    {"my-bert": {"name": "google-bert/bert-base-cased", "family": "bert", "size": "base",
                 "modality": "text"}, ...}

JSON or YAML. A model whose family a registry defines takes that family's task, architecture,
tolerances and modes. The original tools' own families (embedding, text_generation, vision, audio,
multimodal...) say what a model is for, not how to run it: such a model is placed by its config.json
through `place` (the plugin passes `sources.derive.derive_entry`; this part cannot reach the Hub).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_hfmodels.errors import HFModelsError, RegistryError
from pytest_hfmodels.registry.loader import read_yaml
from pytest_hfmodels.registry.model import ModelEntry
from pytest_hfmodels.registry.select import Registry
from pytest_hfmodels.registry.vocabulary import MODALITIES

_FIELDS = {"name", "family", "size", "modality"}


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: `json` keeps the last of two equal ones."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key {key!r}")
        data[key] = value
    return data


#: places a model of a family no registry defines: (key, the file's fields) -> its entry
Placer = Callable[[str, Mapping[str, Any]], ModelEntry]


def load_custom_set(path: Path, registry: Registry, place: Placer | None = None) -> tuple[ModelEntry, ...]:
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
        except OSError as exc:
            raise RegistryError(str(path), f"--hf-models-file: cannot read: {exc.strerror}") from exc
        except ValueError as exc:  # invalid JSON, not UTF-8, or a key given twice
            raise RegistryError(str(path), f"--hf-models-file: not valid JSON: {exc}") from exc
    else:  # YAML read as registries are: UTF-8, no key twice, errors naming the line
        _, data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise RegistryError(str(path), '--hf-models-file: expected {"key": {"name", "family", ...}, ...}')
    return tuple(
        sorted(
            (_entry(path, str(key), value, registry, place) for key, value in data.items()),
            key=lambda e: (e.family, e.key),
        )
    )


def _entry(path: Path, key: str, value: Any, registry: Registry, place: Placer | None) -> ModelEntry:
    if not isinstance(value, dict):
        raise RegistryError(str(path), "must be a mapping with name, family, size, modality", model=key)
    unknown = set(value) - _FIELDS
    if unknown:
        raise RegistryError(
            str(path),
            f"unknown field (allowed: {', '.join(sorted(_FIELDS))})",
            model=key,
            field=sorted(unknown)[0],
        )
    for required in ("name", "family"):
        if not isinstance(value.get(required), str) or not value[required].strip():
            raise RegistryError(str(path), "must be a non-empty string", model=key, field=required)
    family = registry.family_defaults.get(value["family"])
    if family is None and place is not None:
        try:
            return place(key, value)
        except HFModelsError as exc:
            raise RegistryError(str(path), f"cannot place {value['name']!r}: {exc}", model=key) from exc
    if family is None:
        known = ", ".join(sorted(registry.family_defaults))
        raise RegistryError(
            str(path),
            f"no registry defines family {value['family']!r} (known: {known})",
            model=key,
            field="family",
        )
    if family.architecture is None:
        raise RegistryError(
            str(path),
            f"family {family.family!r} has no default architecture in {family.registry_file}",
            model=key,
            field="family",
        )
    modality = value.get("modality", family.modality)
    if modality not in MODALITIES:
        raise RegistryError(
            str(path), f"{modality!r} is not one of {', '.join(MODALITIES)}", model=key, field="modality"
        )
    return ModelEntry(
        key=key,
        family=family.family,
        task=family.task,
        modality=modality,
        id=value["name"],
        source="hub",
        architecture=family.architecture,
        sets=("custom",),
        description=f"custom set, size {value.get('size', 'unknown')}",
        tolerances=family.tolerances,
        dependencies=(),
        registry_file=str(path),
        modes=family.modes,
    )
