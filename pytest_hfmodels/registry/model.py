"""What a registry entry is: frozen values for a model, its tiny build and its tolerances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

SOURCES = ("hub", "tiny", "local", "package")
MODALITIES = ("text", "vision", "audio", "multimodal")
SET_NAMES = ("small", "key")
TOKENIZER_KINDS = ("wordpiece", "byte-bpe", "unigram", "characters")
PADDING_SIDES = ("right", "left")


@dataclass(frozen=True)
class Tolerances:
    """Numerical agreement asked of two runtimes on the same input."""

    atol: float = 1e-4  #: absolute tolerance
    rtol: float = 1e-4  #: relative tolerance


@dataclass(frozen=True)
class TokenizerSpec:
    """How to train a tokenizer for a tiny model on the built-in corpus."""

    #: wordpiece | byte-bpe | unigram: trained with `tokenizers`; characters: the special tokens,
    #: then one id per letter of the corpus, read by `cls` from a vocab.json (CTC models)
    kind: str
    cls: str | None  #: transformers tokenizer class written into tokenizer_config.json
    vocab_size: int
    special_tokens: tuple[str, ...]
    roles: Mapping[str, str]  #: transformers role (pad_token, mask_token, ...) -> special token
    template: str | None  #: post-processing template, e.g. "[CLS] $A [SEP]"
    #: special tokens get the ids after the learned vocabulary (Whisper's layout: its generation
    #: reads every id above <|notimestamps|> as a timestamp) instead of the first ids
    specials_last: bool = False
    #: where batches are padded: decoder-only models that generate from a batch need "left"
    padding_side: str = "right"


@dataclass(frozen=True)
class ComponentSpec:
    """A transformers class and its constructor arguments (image processor, feature extractor)."""

    cls: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class TinySpec:
    """Everything needed to build a tiny random model offline."""

    model_type: str  #: config.json model_type, passed to AutoConfig.for_model
    config: Mapping[str, Any]  #: config overrides (the tiny shape)
    tokenizer: TokenizerSpec | None
    image_processor: ComponentSpec | None
    feature_extractor: ComponentSpec | None
    #: processor combining the tokenizer and the image processor or feature extractor, with any
    #: arguments of its own (LLaVA's patch size, say); given as a class name or {class, args}
    processor: ComponentSpec | None
    generation: Mapping[str, Any]  #: generation_config.json values; "$token" strings resolve to ids
    seed: int


@dataclass(frozen=True)
class ModelEntry:
    """One model of a family registry, validated."""

    key: str  #: short unique name, the first part of every test id
    family: str
    task: str  #: transformers pipeline task
    modality: str
    id: str  #: hub repo id, local path, or tiny/<key>
    source: str  #: hub | tiny | local | package
    architecture: str  #: transformers model class for from_pretrained
    sets: tuple[str, ...]
    description: str
    tolerances: Tolerances
    dependencies: tuple[str, ...]  #: importable module names the entry needs
    registry_file: str
    revision: str | None = None
    package: str | None = None  #: importable package shipping the model (source: package)
    package_path: str | None = None  #: folder inside that package holding config.json
    tiny: TinySpec | None = None
    expect: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: the modes the entry can run in, where the registry narrows them (transformers has no
    #: pipeline for its task, say); None: every mode
    modes: tuple[str, ...] | None = None

    def runs_in(self, mode: str) -> bool:
        return self.modes is None or mode in self.modes


@dataclass(frozen=True)
class FamilyDefaults:
    """A family's own fields: what an entry that says nothing else inherits."""

    family: str
    task: str
    modality: str
    architecture: str | None
    tolerances: Tolerances
    registry_file: str
    modes: tuple[str, ...] | None = None  #: None: every mode
