"""The words a registry entry's fields take, as plain tuples: read by the loader, by `ModelEntry`
and by the option table (which must not import the entry's dataclasses to list its choices)."""

from __future__ import annotations

SOURCES = ("hub", "tiny", "random", "local", "package")
#: the sources built offline with seeded random weights from a registry section named like the source
BUILT_SOURCES = ("tiny", "random")
#: what a model's weights are: trained (hub, package, local) or seeded random (built, or a Hub model
#: under --hf-weights random)
WEIGHTS = ("pretrained", "random")
MODALITIES = ("text", "vision", "audio", "multimodal")
#: small: a tiny model per family; medium: a random-weight model per family at its smallest key
#: model's size; key: the real models
SET_NAMES = ("small", "medium", "key")
TOKENIZER_KINDS = ("wordpiece", "byte-bpe", "unigram", "characters")
PADDING_SIDES = ("right", "left")
