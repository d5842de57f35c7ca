"""Model registries: one YAML file per family, loaded into frozen `ModelEntry` values.

Loading validates every field and rejects unknown ones; an error names the file, the line, the
model key and the field. This module imports neither pytest nor torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml

from pytest_hfmodels.errors import RegistryError
from pytest_hfmodels.modes import MODES
from pytest_hfmodels.registry.model import (
    ComponentSpec,
    FamilyDefaults,
    ModelEntry,
    TinySpec,
    TokenizerSpec,
    Tolerances,
)
from pytest_hfmodels.registry.select import Registry
from pytest_hfmodels.registry.vocabulary import (
    BUILT_SOURCES,
    MODALITIES,
    PADDING_SIDES,
    SET_NAMES,
    SOURCES,
    TOKENIZER_KINDS,
)

_FAMILY_FIELDS = {
    "family",
    "task",
    "modality",
    "architecture",
    "tolerances",
    "modes",
    "description",
    "models",
}
_MODEL_FIELDS = {
    "id",
    "source",
    "architecture",
    "task",
    "sets",
    "description",
    "tiny",
    "random",
    "tolerances",
    "dependencies",
    "package",
    "package_path",
    "revision",
    "expect",
    "modes",
}
#: the fields of a `tiny` or `random` section
_BUILD_FIELDS = {
    "model_type",
    "config",
    "tokenizer",
    "image_processor",
    "feature_extractor",
    "processor",
    "generation",
    "seed",
}
_TOKENIZER_FIELDS = {
    "kind",
    "class",
    "vocab_size",
    "special_tokens",
    "specials_last",
    "roles",
    "template",
    "padding_side",
}
_COMPONENT_FIELDS = {"class", "args"}
_TOLERANCE_FIELDS = {"atol", "rtol"}


def builtin_registry_dir() -> Path:
    """The built-in registries: `registry/builtin/` in an installed wheel (copied there from
    `model_registries/` by the build, see setup.py), else `model_registries/` of the checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "registry" / "builtin", package.parent / "model_registries"):
        if candidate.is_dir():
            return candidate
    raise RegistryError(str(package.parent / "model_registries"), "built-in registry folder not found")


def load_registries(dirs: Iterable[Path | str], include_builtin: bool = True) -> Registry:
    """Load every `*.yaml` / `*.yml` file of the built-in folder and of `dirs`."""
    folders = [builtin_registry_dir()] if include_builtin else []
    for d in dirs:
        path = Path(d)
        if not path.is_dir():
            raise RegistryError(str(path), "--hf-registry: not a directory")
        folders.append(path)
    files: list[Path] = []
    for folder in folders:
        files.extend(sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]))
    entries: dict[str, ModelEntry] = {}
    defaults: dict[str, FamilyDefaults] = {}
    for path in files:
        parser = _Parser(path, None)
        for entry in load_registry_file(path, parser):
            if entry.key in entries:
                raise RegistryError(
                    str(path),
                    f"model key also defined in {entries[entry.key].registry_file}",
                    model=entry.key,
                )
            entries[entry.key] = entry
        if parser.defaults is not None:
            family = parser.defaults.family
            if family in defaults:
                # Two files of one family would merge their defaults silently, the first file's winning.
                raise parser.error(
                    ("family",), f"{family!r} is also defined in {defaults[family].registry_file}"
                )
            defaults[family] = parser.defaults
    ordered = tuple(sorted(entries.values(), key=lambda e: (e.family, e.key)))
    return Registry(
        entries=ordered, files=tuple(str(p) for p in files), family_defaults=MappingProxyType(defaults)
    )


def load_registry_file(path: Path, parser: _Parser | None = None) -> tuple[ModelEntry, ...]:
    """The entries of one file; `parser`, if given, is left holding the family's defaults."""
    node, data = read_yaml(path)
    parser = parser or _Parser(path, None)
    parser.index(node)
    return parser.family(data)


_MERGE_TAG = "tag:yaml.org,2002:merge"

if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    # libyaml's parser, where PyYAML was built with it (its wheels are): a registry of 1,250
    # models parses several times faster than with PyYAML's pure-Python reader and scanner.
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: libyaml reports a bad character's offset in the UTF-8 bytes, PyYAML's reader in characters
_OFFSETS_IN_BYTES = _SafeLoader is not yaml.SafeLoader


class _UniqueKeyLoader(_SafeLoader):
    """PyYAML keeps the last of two equal keys; a registry with one is an error, not a silent override."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            # Checked before the base class flattens `<<: *base` into the node: a key overriding
            # a merged one is YAML's way to vary a template, not a duplicate.
            first_lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:  # the `<<` itself has no value to construct
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    continue  # the base class reports an unhashable key
                if key in first_lines:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first on line {first_lines[key]})",
                        key_node.start_mark,
                    )
                first_lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> tuple[yaml.Node | None, Any]:
    """The file's node tree (for line numbers) and its data; any problem is one RegistryError line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryError(str(path), f"cannot read: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RegistryError(
            f"{path}:{line}", f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start}"
        ) from exc
    loader = None
    try:
        loader = _UniqueKeyLoader(text)  # PyYAML's reader checks every character here, libyaml later
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as exc:
        offset = exc.position
        line = (raw[:offset].count(b"\n") if _OFFSETS_IN_BYTES else text[:offset].count("\n")) + 1
        raise RegistryError(
            f"{path}:{line}", f"invalid YAML: character #x{exc.character:04x}: {exc.reason}"
        ) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise RegistryError(where, f"invalid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise RegistryError(str(path), f"invalid YAML: {' '.join(str(exc).split())}") from exc
    finally:
        if loader is not None:
            loader.dispose()


class _Parser:
    """Validates one file; knows the line of every key so errors can point at it."""

    def __init__(self, path: Path, root: yaml.Node | None) -> None:
        self.path = path
        self.lines: dict[tuple[str, ...], int] = {}
        self.defaults: FamilyDefaults | None = None
        self.index(root)

    def index(self, root: yaml.Node | None) -> None:
        if root is not None:
            self._index(root, ())

    def _index(self, node: yaml.Node, trail: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*trail, str(key_node.value))
                self.lines[key] = key_node.start_mark.line + 1
                self._index(value_node, key)

    def error(self, trail: tuple[str, ...], message: str, model: str | None = None) -> RegistryError:
        line = next(
            (self.lines[trail[:n]] for n in range(len(trail), 0, -1) if trail[:n] in self.lines), None
        )
        where = f"{self.path}:{line}" if line else str(self.path)
        field_name = ".".join(trail[2:] if model else trail) or None
        return RegistryError(where, message, model=model, field=field_name)

    def mapping(
        self, value: Any, trail: tuple[str, ...], allowed: set[str], model: str | None
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(trail, "must be a mapping", model)
        for name in value:
            if name not in allowed:
                raise self.error(
                    (*trail, str(name)), f"unknown field (allowed: {', '.join(sorted(allowed))})", model
                )
        return value

    def string(
        self, value: Any, trail: tuple[str, ...], model: str | None, choices: tuple[str, ...] = ()
    ) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(trail, "must be a non-empty string", model)
        if choices and value not in choices:
            raise self.error(trail, f"{value!r} is not one of {', '.join(choices)}", model)
        return value

    def boolean(self, value: Any, trail: tuple[str, ...], model: str | None) -> bool:
        if not isinstance(value, bool):
            raise self.error(trail, "must be true or false", model)
        return value

    def family(self, data: Any) -> tuple[ModelEntry, ...]:
        doc = self.mapping(data, (), _FAMILY_FIELDS, None)
        for required in ("family", "task", "modality", "models"):
            if required not in doc:
                raise self.error((), f"missing required field {required!r}")
        family = self.string(doc["family"], ("family",), None)
        architecture = doc.get("architecture")
        self.defaults = defaults = FamilyDefaults(
            family=family,
            task=self.string(doc["task"], ("task",), None),
            modality=self.string(doc["modality"], ("modality",), None, MODALITIES),
            architecture=self.string(architecture, ("architecture",), None)
            if architecture is not None
            else None,
            tolerances=self.tolerances(doc.get("tolerances"), ("tolerances",), None, Tolerances()),
            registry_file=str(self.path),
            modes=self.modes(doc["modes"], ("modes",), None) if "modes" in doc else None,
        )
        models = doc["models"]
        if not isinstance(models, dict) or not models:
            raise self.error(("models",), "must be a non-empty mapping of model key -> entry")
        return tuple(self.model(family, str(key), value, defaults) for key, value in models.items())

    def model(self, family: str, key: str, value: Any, defaults: FamilyDefaults) -> ModelEntry:
        trail = ("models", key)
        doc = self.mapping(value, trail, _MODEL_FIELDS, key)
        source = self.string(doc.get("source"), (*trail, "source"), key, SOURCES)
        architecture = doc.get("architecture", defaults.architecture)
        arch = self.string(architecture, (*trail, "architecture"), key)
        sets = doc.get("sets", [])
        if not isinstance(sets, list) or not all(s in SET_NAMES for s in sets):
            raise self.error((*trail, "sets"), f"must be a list drawn from {', '.join(SET_NAMES)}", key)
        built = {
            name: self.build_section(doc[name], (*trail, name), key) for name in BUILT_SOURCES if name in doc
        }
        if source in BUILT_SOURCES and source not in built:
            raise self.error(trail, f"source {source!r} needs a {source!r} section", key)
        if "random" in built and source != "random":
            # A full-size configuration under another source would be read by nothing.
            raise self.error((*trail, "random"), "a 'random' section needs source 'random'", key)
        if source in ("hub", "local") and "id" not in doc:
            raise self.error(trail, f"source {source!r} needs an 'id'", key)
        if source == "package" and ("package" not in doc or "id" not in doc):
            raise self.error(trail, "source 'package' needs 'package' (importable name) and 'id'", key)
        deps = doc.get("dependencies", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise self.error((*trail, "dependencies"), "must be a list of importable module names", key)
        expect = doc.get("expect", {})
        if not isinstance(expect, dict):
            raise self.error((*trail, "expect"), "must be a mapping", key)
        return ModelEntry(
            key=key,
            family=family,
            task=self.string(doc.get("task", defaults.task), (*trail, "task"), key),
            modality=defaults.modality,
            id=self.string(doc.get("id", f"{source}/{key}"), (*trail, "id"), key),
            source=source,
            architecture=arch,
            sets=tuple(sets),
            description=str(doc.get("description", "")),
            tolerances=self.tolerances(
                doc.get("tolerances"), (*trail, "tolerances"), key, defaults.tolerances
            ),
            dependencies=tuple(deps),
            registry_file=str(self.path),
            revision=doc.get("revision"),
            package=doc.get("package"),
            package_path=doc.get("package_path"),
            tiny=built.get("tiny"),
            random=built.get("random"),
            expect=MappingProxyType(expect),
            modes=self.modes(doc["modes"], (*trail, "modes"), key) if "modes" in doc else defaults.modes,
        )

    def modes(self, value: Any, trail: tuple[str, ...], model: str | None) -> tuple[str, ...]:
        known = ", ".join(MODES)
        if not isinstance(value, list) or not value:
            raise self.error(trail, f"must be a non-empty list drawn from {known}", model)
        for name in value:
            if not isinstance(name, str) or name not in MODES:
                raise self.error(trail, f"{name!r} is not a mode (known: {known})", model)
        if len(set(value)) != len(value):
            raise self.error(trail, "lists a mode twice", model)
        return tuple(value)

    def tolerances(
        self, value: Any, trail: tuple[str, ...], model: str | None, default: Tolerances
    ) -> Tolerances:
        if value is None:
            return default
        doc = self.mapping(value, trail, _TOLERANCE_FIELDS, model)
        numbers = {}
        for name, raw in doc.items():
            if (
                isinstance(raw, bool)
                or not isinstance(raw, (int, float))
                or not math.isfinite(raw)
                or raw < 0
            ):
                raise self.error((*trail, name), "must be a finite number >= 0", model)
            numbers[name] = float(raw)
        return dataclasses.replace(default, **numbers)

    def build_section(self, value: Any, trail: tuple[str, ...], model: str) -> TinySpec:
        """A `tiny` or `random` section: one shape, a tiny or a real model's configuration."""
        doc = self.mapping(value, trail, _BUILD_FIELDS, model)
        config = doc.get("config", {})
        if not isinstance(config, dict):
            raise self.error((*trail, "config"), "must be a mapping of config overrides", model)
        generation = doc.get("generation", {})
        if not isinstance(generation, dict):
            raise self.error((*trail, "generation"), "must be a mapping", model)
        seed = doc.get("seed", 0)
        if not isinstance(seed, int):
            raise self.error((*trail, "seed"), "must be an integer", model)
        return TinySpec(
            model_type=self.string(doc.get("model_type"), (*trail, "model_type"), model),
            config=MappingProxyType(config),
            tokenizer=self.tokenizer(doc["tokenizer"], (*trail, "tokenizer"), model)
            if "tokenizer" in doc
            else None,
            image_processor=self.component(doc.get("image_processor"), (*trail, "image_processor"), model),
            feature_extractor=self.component(
                doc.get("feature_extractor"), (*trail, "feature_extractor"), model
            ),
            processor=self.component(
                {"class": doc["processor"]}
                if isinstance(doc.get("processor"), str)
                else doc.get("processor"),
                (*trail, "processor"),
                model,
            ),
            generation=MappingProxyType(generation),
            seed=seed,
        )

    def tokenizer(self, value: Any, trail: tuple[str, ...], model: str) -> TokenizerSpec:
        doc = self.mapping(value, trail, _TOKENIZER_FIELDS, model)
        specials = doc.get("special_tokens", [])
        roles = doc.get("roles", {})
        if not isinstance(specials, list) or not all(isinstance(s, str) for s in specials):
            raise self.error((*trail, "special_tokens"), "must be a list of strings", model)
        if not isinstance(roles, dict) or not all(v in specials for v in roles.values()):
            raise self.error((*trail, "roles"), "must map roles to tokens listed in special_tokens", model)
        vocab = doc.get("vocab_size", 300)
        if not isinstance(vocab, int) or vocab < len(specials) + 1:
            raise self.error(
                (*trail, "vocab_size"), "must be an integer larger than the special tokens", model
            )
        kind = self.string(doc.get("kind"), (*trail, "kind"), model, TOKENIZER_KINDS)
        if kind == "characters" and not doc.get("class"):
            raise self.error((*trail, "class"), "a characters tokenizer needs the class to read it", model)
        return TokenizerSpec(
            kind=kind,
            cls=doc.get("class"),
            vocab_size=vocab,
            special_tokens=tuple(specials),
            roles=MappingProxyType(dict(roles)),
            template=doc.get("template"),
            specials_last=self.boolean(doc.get("specials_last", False), (*trail, "specials_last"), model),
            padding_side=self.string(
                doc.get("padding_side", "right"), (*trail, "padding_side"), model, PADDING_SIDES
            ),
        )

    def component(self, value: Any, trail: tuple[str, ...], model: str) -> ComponentSpec | None:
        if value is None:
            return None
        doc = self.mapping(value, trail, _COMPONENT_FIELDS, model)
        args = doc.get("args", {})
        if not isinstance(args, dict):
            raise self.error((*trail, "args"), "must be a mapping", model)
        return ComponentSpec(
            cls=self.string(doc.get("class"), (*trail, "class"), model), args=MappingProxyType(args)
        )
