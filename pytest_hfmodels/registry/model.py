"""What a registry entry is: frozen values for a model, its random-weight build and its tolerances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pytest_hfmodels.registry.vocabulary import BUILT_SOURCES


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
    """Everything needed to build a model with seeded random weights offline: a tiny one (a `tiny`
    section), or one of a real model's size (a `random` section, or a Hub model's config.json
    under --hf-weights random) that keeps a tiny tokenizer."""

    model_type: str  #: config.json model_type, passed to AutoConfig.for_model
    #: config values: a tiny shape's overrides, or a real model's configuration; "$token" strings
    #: resolve to the tokenizer's ids
    config: Mapping[str, Any]
    tokenizer: TokenizerSpec | None
    image_processor: ComponentSpec | None
    feature_extractor: ComponentSpec | None
    #: processor combining the tokenizer and the image processor or feature extractor, with any
    #: arguments of its own (LLaVA's patch size, say); given as a class name or {class, args}
    processor: ComponentSpec | None
    generation: Mapping[str, Any]  #: generation_config.json values; "$token" strings resolve to ids
    seed: int


#: tasks whose models always decode token by token
GENERATIVE_TASKS = frozenset({"text-generation", "text2text-generation", "image-text-to-text"})


@dataclass(frozen=True)
class ModelEntry:
    """One model of a family registry, validated."""

    key: str  #: short unique name, the first part of every test id
    family: str
    task: str  #: transformers pipeline task
    modality: str
    id: str  #: hub repo id, local path, or <source>/<key> (tiny, random)
    source: str  #: hub | tiny | random | local | package
    architecture: str  #: transformers model class for from_pretrained
    sets: tuple[str, ...]
    description: str
    tolerances: Tolerances
    dependencies: tuple[str, ...]  #: importable module names the entry needs
    registry_file: str
    revision: str | None = None
    package: str | None = None  #: importable package shipping the model (source: package)
    package_path: str | None = None  #: folder inside that package holding config.json
    tiny: TinySpec | None = None  #: the `tiny` section (source: tiny)
    random: TinySpec | None = None  #: the `random` section (source: random)
    expect: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: the modes the entry can run in, where the registry narrows them (transformers has no
    #: pipeline for its task, say); None: every mode
    modes: tuple[str, ...] | None = None

    def runs_in(self, mode: str) -> bool:
        return self.modes is None or mode in self.modes

    @property
    def generates(self) -> bool:
        """The model writes tokens one after another (greedy decoding can be measured): text and
        image-text generation, text-to-text, and speech recognition by a sequence-to-sequence model
        (Whisper; a CTC model such as wav2vec2 labels frames in one call)."""
        if self.task in GENERATIVE_TASKS:
            return True
        return self.task == "automatic-speech-recognition" and self.architecture.endswith(
            "ForConditionalGeneration"
        )

    @property
    def build_spec(self) -> TinySpec | None:
        """The section a built source is made from (None for the other sources)."""
        return {"tiny": self.tiny, "random": self.random}.get(self.source)

    @property
    def weights(self) -> str:
        """random for a built source, else pretrained (what --hf-weights random may replace)."""
        return "random" if self.source in BUILT_SOURCES else "pretrained"


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
