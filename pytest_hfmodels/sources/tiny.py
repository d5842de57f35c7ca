"""Models with seeded random weights, built offline from a registry's `tiny` or `random` section.

The weights are seeded random; the tokenizer is trained on a small built-in corpus so that the
real `transformers.pipeline` runs end to end (tokenise, forward, decode). Everything a family
needs is data in its registry file: adding a family needs no code here. A tiny model's
vocabulary is its tokenizer's; a `random` model has a real model's configuration, vocabulary
size included, and the same small tokenizer, whose ids then use only the first rows of the
embeddings.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_hfmodels.cache.store import build_once, content_key
from pytest_hfmodels.errors import ModelSourceError
from pytest_hfmodels.model_folder import transformers_class
from pytest_hfmodels.registry.model import ModelEntry, TinySpec, TokenizerSpec
from pytest_hfmodels.samples import TOKENIZER_CORPUS

#: bump when the way a model is built changes, so old cache entries are not reused
BUILDER_VERSION = 2


def built_model_dir(entry: ModelEntry, cache_root: Path, *, full_check: bool = False) -> Path:
    """Build (once per machine) and return the folder of a `tiny` or `random` entry's model.

    Its files are checked against the entry's manifest on every use (`full_check`: every hash),
    and rebuilt when damaged."""
    spec = entry.build_spec
    if spec is None:
        raise ModelSourceError(
            f"model {entry.key!r} ({entry.registry_file}): no {entry.source!r} section to build from"
        )
    details = {"model": entry.key, "architecture": entry.architecture, "registry_file": entry.registry_file}
    return cached_build(
        entry.source,
        entry.key,
        entry.architecture,
        spec,
        cache_root,
        details,
        what=f"model {entry.key!r} ({entry.registry_file})",
        full_check=full_check,
    )


def cached_build(
    kind: str,
    name: str,
    architecture: str,
    spec: TinySpec,
    cache_root: Path,
    details: Mapping[str, Any],
    *,
    what: str,
    full_check: bool = False,
) -> Path:
    """The cache entry `<cache_root>/<kind>/<name>-<key of spec>`, built once with `build_random_model`.

    `kind` is tiny (the vocabulary is the tokenizer's unless the spec sets one) or random (the
    spec's configuration is a real model's: its vocabulary size stays); `what` names the model
    in errors."""
    import tokenizers
    import transformers

    key = content_key(
        BUILDER_VERSION,
        architecture,
        _spec_as_json(spec),
        transformers.__version__,
        tokenizers.__version__,
    )

    def build(staging: Path) -> dict[str, Any]:
        build_random_model(architecture, spec, staging, vocab_from_tokenizer=kind == "tiny")
        return dict(details)

    try:
        return build_once(cache_root, kind, f"{name}-{key}", build, full_check=full_check).path
    except ModelSourceError as exc:
        raise ModelSourceError(f"{what}: {exc}") from exc
    except Exception as exc:
        raise ModelSourceError(f"{what}: {kind} build failed: {type(exc).__name__}: {exc}") from exc


def build_random_model(
    architecture: str, spec: TinySpec, out: Path, *, vocab_from_tokenizer: bool = True
) -> None:
    """Write config, seeded random weights, tokenizer/processor files into `out`.

    `vocab_from_tokenizer`: a config without a vocab_size gets the tokenizer's (a tiny model);
    otherwise the config's (or its model type's default) is kept. Either way the tokenizer may
    not have more tokens than the vocabulary: its ids would index past the embeddings."""
    import torch
    import transformers

    tokenizer = train_tokenizer(spec.tokenizer) if spec.tokenizer else None
    token_ids = (
        {t: tokenizer.convert_tokens_to_ids(t) for t in spec.tokenizer.special_tokens}
        if tokenizer and spec.tokenizer
        else {}
    )
    overrides = _resolve_tokens(dict(spec.config), token_ids)
    if tokenizer is not None and vocab_from_tokenizer:
        overrides.setdefault("vocab_size", len(tokenizer))
    config = transformers.AutoConfig.for_model(spec.model_type, **overrides)
    if tokenizer is not None:
        vocab = getattr(config.get_text_config(), "vocab_size", None)
        if isinstance(vocab, int) and len(tokenizer) > vocab:
            raise ModelSourceError(
                f"the tokenizer has {len(tokenizer)} tokens, more than the config's vocab_size {vocab}"
            )
    model_class = transformers_class(architecture)
    torch.manual_seed(spec.seed)
    model = model_class(config)
    model.eval()
    if spec.generation:
        model.generation_config = transformers.GenerationConfig(
            **_resolve_tokens(dict(spec.generation), token_ids)
        )
    model.save_pretrained(out)

    parts: dict[str, Any] = {}
    if tokenizer is not None:
        parts["tokenizer"] = tokenizer
    for name, component in (
        ("image_processor", spec.image_processor),
        ("feature_extractor", spec.feature_extractor),
    ):
        if component is not None:
            parts[name] = transformers_class(component.cls)(**dict(component.args))
    if spec.processor:
        transformers_class(spec.processor.cls)(**parts, **dict(spec.processor.args)).save_pretrained(out)
    for part in parts.values():
        part.save_pretrained(out)
    if tokenizer is not None and spec.tokenizer and spec.tokenizer.cls:
        # The generic fast tokenizer has no task-specific decoding (Whisper's ASR decoding, say):
        # name the family's class so AutoTokenizer loads that one.
        path = out / "tokenizer_config.json"
        data = json.loads(path.read_text())
        data["tokenizer_class"] = spec.tokenizer.cls
        path.write_text(json.dumps(data, indent=2))


def train_tokenizer(spec: TokenizerSpec) -> Any:
    """Train a tokenizer of `spec.kind` on the built-in corpus and wrap it for transformers.

    The result is the same in every process. The `tokenizers` trainers count words in a hash map
    whose seed is random per process (ahash's RandomState: neither PYTHONHASHSEED nor the thread
    count changes it), and two trainers let that order through; see `_continuation_pieces` and
    `_canonical_unigram`. The byte-level BPE trainer does not: its alphabet is fixed and sorted,
    and merge ties are broken by token id.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if spec.kind == "characters":
        return _character_tokenizer(spec)
    specials = list(spec.special_tokens)
    learned_specials = [] if spec.specials_last else specials
    unk = spec.roles.get("unk_token")
    if spec.kind == "wordpiece":
        tok = _wordpiece_pipeline(models.WordPiece(unk_token=unk or "[UNK]"))
        trainer: Any = trainers.WordPieceTrainer(
            vocab_size=spec.vocab_size, special_tokens=[*learned_specials, *_continuation_pieces(tok)]
        )
    elif spec.kind == "byte-bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=spec.vocab_size,
            special_tokens=learned_specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    elif spec.kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=spec.vocab_size, special_tokens=learned_specials, unk_token=unk
        )
    else:  # the registry loader only lets the kinds above through
        raise ModelSourceError(f"unknown tokenizer kind {spec.kind!r}")
    tok.train_from_iterator(TOKENIZER_CORPUS, trainer)
    if spec.kind == "wordpiece":
        # The trainer also made the reserved continuation pieces added tokens, which would be
        # split out of raw text before the model sees it: keep them as vocabulary only.
        vocab = tok.get_vocab(with_added_tokens=False)
        tok = _wordpiece_pipeline(models.WordPiece(vocab, unk_token=unk or "[UNK]"))
        tok.add_special_tokens(learned_specials)
    elif spec.kind == "unigram":
        tok.model = _canonical_unigram(tok, head={*learned_specials, *([unk] if unk else [])})
    if spec.specials_last:
        tok.add_special_tokens(specials)  # appended in order, after the learned ids
    if spec.template:
        used = [t for t in specials if t in spec.template]
        tok.post_processor = processors.TemplateProcessing(
            single=spec.template,
            pair=f"{spec.template} $B:1",
            special_tokens=[(t, tok.token_to_id(t)) for t in used],
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side=spec.padding_side, **dict(spec.roles))


def _wordpiece_pipeline(model: Any) -> Any:
    """A BERT-style tokenizer (lowercasing, punctuation split) around a WordPiece `model`."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers

    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    return tok


def _continuation_pieces(tok: Any) -> list[str]:
    """Every "##c" piece the corpus needs (a character inside a word), sorted.

    The WordPiece trainer numbers these as it meets them walking its word-count hash map, so
    their ids, and through them which of two equally frequent pairs is merged first, change from
    process to process. Reserved up front, as the trainer's first tokens, they get fixed ids.
    """
    letters = {
        c
        for line in TOKENIZER_CORPUS
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(line))
        for c in word[1:]
    }
    return [f"##{c}" for c in sorted(letters)]


#: tokenizers' UnigramTrainer gives each corpus character the EM pruned away the lowest score
#: plus this step times its place in a hash set (`min_score_penalty_delta`, unigram/trainer.rs)
_UNIGRAM_FLOOR_STEP = 1e-4
#: decimals kept of a unigram score: the E-step sums sentences in hash-map order, so the last
#: bits of every score vary from process to process
_UNIGRAM_SCORE_DECIMALS = 8


def _canonical_unigram(tok: Any, head: set[str]) -> Any:
    """The trained unigram model of `tok`, with the per-process noise of the trainer taken out.

    The special tokens (`head`, first in the vocabulary) stay as they are. Of the learned pieces,
    the characters re-added after pruning all get the lowest score, every score is rounded, and
    the pieces are ordered by score, then text, so that ties no longer follow hash order.
    """
    from tokenizers import models

    trained = json.loads(tok.to_str())["model"]
    pieces: list[tuple[str, float]] = [(p, s) for p, s in trained["vocab"]]
    assert {p for p, _ in pieces[: len(head)]} == head, "the trainer puts the special tokens first"
    learned = pieces[len(head) :]
    lowest = min(score for _, score in learned)
    chars = {
        c for line in TOKENIZER_CORPUS for word, _ in tok.pre_tokenizer.pre_tokenize_str(line) for c in word
    }

    def canonical_score(piece: str, score: float) -> float:
        steps = (score - lowest) / _UNIGRAM_FLOOR_STEP
        if piece in chars and round(steps) < len(chars) and abs(steps - round(steps)) < 1e-6:
            score = lowest
        return round(score, _UNIGRAM_SCORE_DECIMALS)

    ordered = sorted(((p, canonical_score(p, s)) for p, s in learned), key=lambda ps: (-ps[1], ps[0]))
    return models.Unigram([*pieces[: len(head)], *ordered], trained["unk_id"], trained["byte_fallback"])


def _character_tokenizer(spec: TokenizerSpec) -> Any:
    """A CTC vocabulary: the special tokens, then every letter the corpus uses, one id each."""
    assert spec.cls is not None  # the registry loader requires a class for this kind
    letters = sorted({c for line in TOKENIZER_CORPUS for c in line.lower() if c.isalpha() or c == "'"})
    tokens = [*spec.special_tokens, *(c for c in letters if c not in spec.special_tokens)]
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.json"
        vocab.write_text(json.dumps({token: i for i, token in enumerate(tokens)}), encoding="utf-8")
        return transformers_class(spec.cls)(str(vocab), **dict(spec.roles))  # reads the file now


def _resolve_tokens(values: dict[str, Any], token_ids: Mapping[str, int]) -> dict[str, Any]:
    """Replace "$<token>" strings (and lists of them) by the trained tokenizer's ids."""

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("$"):
            if value[1:] not in token_ids:
                raise ModelSourceError(f"{value!r}: not one of the tokenizer's special tokens")
            return token_ids[value[1:]]
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, dict):  # a sub-model's config (CLIP's text_config, say)
            return {k: resolve(v) for k, v in value.items()}
        return value

    return {k: resolve(v) for k, v in values.items()}


def _spec_as_json(spec: TinySpec) -> Any:
    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if hasattr(value, "__dataclass_fields__"):
            return {k: plain(getattr(value, k)) for k in value.__dataclass_fields__}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(spec)
