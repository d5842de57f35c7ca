"""The tiny models' tokenizers come out the same however often, and in whatever process, they are
trained: the `tokenizers` trainers walk hash maps seeded at random for each map, so without care
two trainings in one process already differ (tests/reliability/test_deterministic_build.py checks
whole builds across processes)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.registry.model import TokenizerSpec
from pytest_hfmodels.registry.vocabulary import TOKENIZER_KINDS
from pytest_hfmodels.sources.tiny import train_tokenizer

#: the first tiny model of the built-in registries for each tokenizer kind
SPEC_OF_KIND: dict[str, TokenizerSpec] = {}
for _entry in load_registries([]).entries:
    if _entry.tiny and _entry.tiny.tokenizer:
        SPEC_OF_KIND.setdefault(_entry.tiny.tokenizer.kind, _entry.tiny.tokenizer)


def _files(tokenizer: Any, folder: Any) -> dict[str, bytes]:
    tokenizer.save_pretrained(folder)
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_every_tokenizer_kind_has_a_built_in_example() -> None:
    assert set(SPEC_OF_KIND) == set(TOKENIZER_KINDS)


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_training_again_gives_byte_identical_files(kind: str, tmp_path: Any) -> None:
    spec = SPEC_OF_KIND[kind]
    saved = [_files(train_tokenizer(spec), tmp_path / str(i)) for i in range(4)]
    assert all(files == saved[0] for files in saved[1:])


def test_wordpiece_numbers_the_continuation_pieces_in_order_after_the_special_tokens() -> None:
    spec = SPEC_OF_KIND["wordpiece"]
    vocab = json.loads(train_tokenizer(spec).backend_tokenizer.to_str())["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    continuation = [t for t in tokens if t.startswith("##") and len(t) == 3]
    assert tokens[: len(spec.special_tokens) + len(continuation)] == [
        *spec.special_tokens,
        *sorted(continuation),
    ]


def test_unigram_pieces_are_ordered_by_score_then_text() -> None:
    spec = SPEC_OF_KIND["unigram"]
    tokenizer = train_tokenizer(spec)
    pieces = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["vocab"]
    learned = [(p, s) for p, s in pieces if p not in spec.special_tokens]
    assert learned == sorted(learned, key=lambda ps: (-ps[1], ps[0]))
    assert tokenizer.decode(tokenizer("the quick brown fox").input_ids, skip_special_tokens=True) == (
        "the quick brown fox"
    )
