"""The entries a run's settings select: registry keys, families and sets, the custom set, and any
Hub id or local folder named by `--hf-model` without a registry (placed by `sources.derive`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_hfmodels.cases.settings import Settings
from pytest_hfmodels.errors import SelectionError
from pytest_hfmodels.registry.custom_set import load_custom_set
from pytest_hfmodels.registry.model import ModelEntry
from pytest_hfmodels.registry.select import Registry, select
from pytest_hfmodels.sources.derive import derive_entry, is_model_reference


def selected_entries(registry: Registry, settings: Settings) -> tuple[ModelEntry, ...]:
    """Every entry the selection names, registry entries first, in the registries' order."""
    if settings.model_set == "custom" and settings.models_file is not None:
        models_file = str(settings.models_file)

        def place(key: str, fields: Mapping[str, Any]) -> ModelEntry:
            size = fields.get("size", "unknown")
            return derive_entry(
                str(fields["name"]),
                registry,
                offline=settings.offline,
                key=key,
                sets=("custom",),
                description=f"custom set, {fields['family']}, size {size}",
                registry_file=models_file,
            )

        custom = load_custom_set(settings.models_file, registry, place)
        return select(custom, settings.families, settings.models, "custom")
    known = {entry.key for entry in registry.entries}
    references = [m for m in settings.models if m not in known and is_model_reference(m)]
    keys = [m for m in settings.models if m not in references]
    entries = registry.select(settings.families, keys, settings.model_set) if keys or not references else ()
    derived = tuple(derive_entry(model, registry, offline=settings.offline) for model in references)
    taken = {entry.key for entry in entries}
    for entry in derived:
        if entry.key in taken:
            raise SelectionError(
                f"--hf-model {entry.id!r}: its test-id key {entry.key!r} is also another selected "
                "model's; name one of them through a registry entry with its own key"
            )
        taken.add(entry.key)
    return (*entries, *derived)
