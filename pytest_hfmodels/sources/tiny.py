"""Tiny random models built offline from a registry's `tiny` section.

The weights are seeded random; the tokenizer is trained on a small built-in corpus so that the
real `transformers.pipeline` runs end to end (tokenise, forward, decode). Everything a family
needs is data in its registry file: adding a family needs no code here.
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

#: bump when the way a tiny model is built changes, so old cache entries are not reused
BUILDER_VERSION = 1


def tiny_model_dir(entry: ModelEntry, cache_root: Path) -> Path:
    """Build (once per machine) and return the folder of `entry`'s tiny model."""
    spec = entry.tiny
    if spec is None:
        raise ModelSourceError(
            f"model {entry.key!r} ({entry.registry_file}): no 'tiny' section to build from"
        )
    import tokenizers
    import transformers

    key = content_key(
        BUILDER_VERSION,
        entry.architecture,
        _spec_as_json(spec),
        transformers.__version__,
        tokenizers.__version__,
    )
    target = cache_root / "tiny" / f"{entry.key}-{key}"
    try:
        return build_once(target, lambda tmp: build_tiny_model(entry.architecture, spec, tmp))
    except ModelSourceError:
        raise
    except Exception as exc:
        raise ModelSourceError(
            f"model {entry.key!r} ({entry.registry_file}): tiny build failed: {type(exc).__name__}: {exc}"
        ) from exc


def build_tiny_model(architecture: str, spec: TinySpec, out: Path) -> None:
    """Write config, seeded random weights, tokenizer/processor files into `out`."""
    import torch
    import transformers

    tokenizer = train_tokenizer(spec.tokenizer) if spec.tokenizer else None
    token_ids = (
        {t: tokenizer.convert_tokens_to_ids(t) for t in spec.tokenizer.special_tokens}
        if tokenizer and spec.tokenizer
        else {}
    )
    overrides = _resolve_tokens(dict(spec.config), token_ids)
    if tokenizer is not None:
        overrides.setdefault("vocab_size", len(tokenizer))
    config = transformers.AutoConfig.for_model(spec.model_type, **overrides)
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
    """Train a tokenizer of `spec.kind` on the built-in corpus and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if spec.kind == "characters":
        return _character_tokenizer(spec)
    specials = list(spec.special_tokens)
    learned_specials = [] if spec.specials_last else specials
    unk = spec.roles.get("unk_token")
    if spec.kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk or "[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer: Any = trainers.WordPieceTrainer(vocab_size=spec.vocab_size, special_tokens=learned_specials)
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
