"""Choosing entries: the loaded registries, the user's selection, and the table that lists them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pytest_hfmodels.errors import SelectionError
from pytest_hfmodels.registry.model import FamilyDefaults, ModelEntry


@dataclass(frozen=True)
class Registry:
    """All entries of all loaded registry files, in a stable order."""

    entries: tuple[ModelEntry, ...]
    files: tuple[str, ...]
    family_defaults: Mapping[str, FamilyDefaults] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(sorted({e.family for e in self.entries}))

    def select(
        self, families: Iterable[str] = (), models: Iterable[str] = (), model_set: str = "small"
    ) -> tuple[ModelEntry, ...]:
        return select(self.entries, families, models, model_set)


def select(
    entries: Iterable[ModelEntry],
    families: Iterable[str] = (),
    models: Iterable[str] = (),
    model_set: str = "small",
) -> tuple[ModelEntry, ...]:
    """Entries matching the selection; an unknown family or model is an error naming it."""
    entries, families, models = tuple(entries), tuple(families), tuple(models)
    known_families, known_models = {e.family for e in entries}, {e.key for e in entries}
    for name in families:
        if name not in known_families:
            raise SelectionError(
                f"--hf-family {name!r}: no such family (known: {', '.join(sorted(known_families))})"
            )
    for name in models:
        if name not in known_models:
            raise SelectionError(f"--hf-model {name!r}: no such model key (see pytest --hf-list-models)")
    chosen = []
    for entry in entries:
        if families and entry.family not in families:
            continue
        if models:
            if entry.key not in models:
                continue
        elif model_set != "all" and model_set not in entry.sets:
            continue
        chosen.append(entry)
    return tuple(chosen)


def as_table(entries: Iterable[ModelEntry]) -> str:
    """The entries as an aligned text table (for --hf-list-models and `hfmodels registry`)."""
    header = ("key", "family", "task", "source", "sets", "modes", "id")
    rows = [header] + [
        (e.key, e.family, e.task, e.source, ",".join(e.sets) or "-", ",".join(e.modes or ("all",)), e.id)
        for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
