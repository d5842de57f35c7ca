"""A short human-readable sample of what a model answered in a forward case, for reports.

A reader sees that a model works, not only that a check passed: the top labels with their scores,
the text a pipeline generated or transcribed, the next token a language model predicts, how many
boxes a detector finds, how close two sentence embeddings are. Every mode is described from its
own outputs: a pipeline's lists of dicts, from_pretrained's named tensors, the onnxruntime and
openvino modes' named numpy arrays (their runner keeps the PyTorch model's config and
preprocessors in `reference`).

A sample is a courtesy: describing never raises, and anything unexpected gives None.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_hfmodels.samples import SAMPLE_LABELS, SAMPLE_SOUND_LABELS, SAMPLE_VIDEO_LABELS

#: the longest sample stored: one line of a report's table
MAX_CHARS = 120
_TOP = 3
#: contrastive outputs scoring each image, sound or video against the sample texts the modes give
_CONTRASTIVE_TEXTS = {
    "logits_per_image": SAMPLE_LABELS,
    "logits_per_audio": SAMPLE_SOUND_LABELS,
    "logits_per_video": SAMPLE_VIDEO_LABELS,
}


def describe_outputs(runner: Any, inputs: Any, outputs: Any) -> str | None:
    """What the first input of a forward case gave, in at most MAX_CHARS characters; None when the
    outputs are not of a kind described here."""
    try:
        if getattr(runner, "mode", None) == "pipeline":
            text = _pipeline(runner, inputs, outputs)
        else:
            text = _tensors(runner, inputs, outputs)
    except Exception:  # a sample must never fail or skip a case that ran
        return None
    return shorten(text) if text else None


def shorten(text: str) -> str:
    """One line of at most MAX_CHARS characters, an ellipsis where cut."""
    # A byte-level tokenizer decodes a token that ends inside a character as U+FFFD: not text.
    line = re.sub(r"\s+", " ", text.replace("\ufffd", "")).strip()
    return line if len(line) <= MAX_CHARS else line[: MAX_CHARS - 1].rstrip() + "…"


def _p(probability: float) -> str:
    """Two significant digits: a random tiny model's 0.0023 is not 0.00."""
    return f"{probability:.2g}"


def _scores(predictions: Sequence[Mapping[str, Any]], name: str = "label") -> str:
    return ", ".join(f"{str(p[name]).strip()} {_p(float(p['score']))}" for p in predictions[:_TOP])


def _first(outputs: Any) -> Any:
    """The first input's result: pipelines unwrap the result of a one-element input list."""
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], list):
        return outputs[0]
    return outputs


def _pipeline(runner: Any, inputs: Any, outputs: Any) -> str | None:
    task = runner.entry.task
    if task == "fill-mask":
        return "mask: " + _scores(_first(outputs), "token_str")
    if task in ("image-classification", "zero-shot-image-classification", "zero-shot-audio-classification"):
        return _scores(_first(outputs))
    if task == "object-detection":
        detections = _first(outputs)
        if not detections:
            return "no boxes"
        best = max(detections, key=lambda d: float(d["score"]))
        return f"{len(detections)} boxes; best: {best['label']} {_p(float(best['score']))}"
    if task == "mask-generation":
        generated = outputs if isinstance(outputs, Mapping) else outputs[0]
        scores = [float(s) for s in generated["scores"]]
        best = f", best score {_p(max(scores))}" if scores else ""
        return f"{len(generated['masks'])} masks{best}"
    if task == "automatic-speech-recognition":
        return f'transcript: "{_first_item(outputs)["text"].strip()}"'
    if task == "text-generation":
        tokenizer = runner.pipe.tokenizer
        generated = _first_item(_first(outputs))
        prompt = len(tokenizer(inputs[0])["input_ids"])
        new = generated["generated_token_ids"][prompt:]
        return _generated(inputs[0], tokenizer.decode(new, skip_special_tokens=True), len(new))
    if task == "text2text-generation":  # the model's own generate: ids, the decoder start token first
        new = outputs[0][1:]
        return _generated(None, runner.tokenizer.decode(new, skip_special_tokens=True), len(new))
    if task == "image-text-to-text":
        processor = runner.pipe.processor
        first = processor(images=inputs["images"][:1], text=inputs["text"][:1])
        prompt = len(first["input_ids"][0])  # image tokens expanded, as the model sees it
        generated = _first_item(_first_item(outputs))
        new = generated["generated_token_ids"][prompt:]
        return _generated(None, processor.tokenizer.decode(new, skip_special_tokens=True), len(new))
    if task == "feature-extraction":
        import numpy as np

        vectors = [np.asarray(o, dtype=np.float32)[0].mean(axis=0) for o in outputs[:2]]
        return _embeddings(vectors, list(inputs[:2]))
    return None


def _first_item(outputs: Any) -> Any:
    return outputs[0] if isinstance(outputs, list) else outputs


def _generated(prompt: str | None, text: str, tokens: int) -> str:
    said = f'"{text.strip()}"' if text.strip() else f"{tokens} tokens, none printable"
    return f'"{prompt}" -> {said}' if prompt else f"generated: {said}"


def _embeddings(vectors: list[Any], texts: list[Any]) -> str:
    import numpy as np

    first = vectors[0]
    text = f"{first.shape[-1]}-d embedding, norm {float(np.linalg.norm(first)):.2f}"
    if len(vectors) > 1 and len(texts) > 1 and not _same(texts[0], texts[1]):
        a, b = vectors[0], vectors[1]
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        text += f"; cosine of the first two inputs {cosine:.3f}"
    return text


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _array(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().float().cpu().numpy()
    return np.asarray(value)


def _softmax(values: Any) -> Any:
    import numpy as np

    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _config(runner: Any) -> Any:
    model: Any = getattr(runner, "model", None)
    if model is None and getattr(runner, "reference", None) is not None:
        model = runner.reference.model
    return model.config


def _tokenizer(runner: Any) -> Any:
    """The model's tokenizer: from_pretrained's preprocessor (or its processor's), the exported
    modes' reference preprocessors; None for a model without one (a CTC model's feature extractor)."""
    candidates: list[Any] = []
    reference = getattr(runner, "reference", None)
    if reference is not None:
        pre = reference.preprocessors
        candidates += [pre.tokenizer, getattr(pre.processor, "tokenizer", None)]
    pre = getattr(runner, "preprocessor", None)
    candidates += [getattr(pre, "tokenizer", None), pre]
    found = next((c for c in candidates if c is not None and hasattr(c, "decode")), None)
    if found is None and getattr(runner, "mode", None) == "from_pretrained":
        # Audio models load a feature extractor only; their folder has the tokenizer that reads ids.
        import transformers

        found = transformers.AutoTokenizer.from_pretrained(_config(runner)._name_or_path)
    return found


def _label(config: Any, index: int) -> str:
    names = getattr(config, "id2label", None) or {}
    return str(names.get(index, names.get(str(index), index)))


def _top_labels(config: Any, row: Any) -> str:
    probabilities = _softmax(row)
    order = probabilities.argsort()[::-1][:_TOP]
    return ", ".join(f"{_label(config, int(i))} {_p(float(probabilities[i]))}" for i in order)


def _tensors(runner: Any, inputs: Any, outputs: Any) -> str | None:
    arrays = {name: _array(value) for name, value in outputs.items() if value is not None}
    config = _config(runner)
    architecture = runner.entry.architecture
    if "iou_scores" in arrays:  # promptable segmentation: candidate masks per point prompt
        iou = arrays["iou_scores"][0]
        return f"{iou.shape[0]} prompts x {iou.shape[1]} masks, best IoU {_p(float(iou.max()))}"
    for name, texts in _CONTRASTIVE_TEXTS.items():
        if name in arrays:
            row = _softmax(arrays[name][0])
            order = row.argsort()[::-1][:_TOP]
            return ", ".join(f"{texts[int(i)]} {_p(float(row[i]))}" for i in order)
    logits = arrays.get("logits")
    if logits is not None and "pred_boxes" in arrays:  # DETR: classes and "no object" per query
        probabilities = _softmax(logits[0])
        objects = probabilities[:, :-1]
        found = int((probabilities.argmax(axis=-1) < probabilities.shape[-1] - 1).sum())
        query, label = divmod(int(objects.argmax()), objects.shape[-1])
        best = f"{_label(config, label)} {_p(float(objects[query, label]))}"
        return f"{found} of {objects.shape[0]} queries find an object; best: {best}"
    if logits is not None and logits.ndim == 2:  # a classifier
        return _top_labels(config, logits[0])
    if logits is not None and logits.ndim == 3:
        if architecture.endswith("ForCTC"):
            return _ctc(runner, config, logits[0])
        return _next_token(runner, inputs, logits[0], masked=architecture.endswith("ForMaskedLM"))
    hidden = arrays.get("last_hidden_state")
    if hidden is not None and hidden.ndim == 3:
        return _pooled(inputs, hidden)
    return None


def _ctc(runner: Any, config: Any, frames: Any) -> str:
    """Greedy CTC: the best token per frame, repeats merged, blanks (the pad token) dropped."""
    ids = frames.argmax(axis=-1).tolist()
    blank = getattr(config, "pad_token_id", 0)
    tokens = [i for n, i in enumerate(ids) if i != blank and (n == 0 or i != ids[n - 1])]
    tokenizer = _tokenizer(runner)
    if tokenizer is None:
        return f"transcript: {len(tokens)} tokens from {len(ids)} frames"
    return f'transcript: "{tokenizer.decode(tokens).strip()}"'


def _next_token(runner: Any, inputs: Any, logits: Any, *, masked: bool) -> str:
    """A masked LM's prediction at its mask (without one, what it reads at each position: the input
    itself, for a trained model); else the next token after the input's last real token (the
    decoder's, for an encoder-decoder)."""
    tokenizer = _tokenizer(runner)

    def text(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True).strip() if tokenizer else f"ids {ids}"

    named = inputs if isinstance(inputs, Mapping) else {}
    if masked:
        mask_id = getattr(tokenizer, "mask_token_id", None)
        row = _array(named["input_ids"])[0] if "input_ids" in named else None
        hits = [] if row is None or mask_id is None else [int(i) for i in (row == mask_id).nonzero()[0]]
        if not hits:
            return f'reads: "{text([int(i) for i in logits.argmax(axis=-1)[:16]])}"'
        probabilities = _softmax(logits[hits[0]])
        best = int(probabilities.argmax())
        return f'at the mask: "{text([best])}" {_p(float(probabilities[best]))}'
    position = logits.shape[0] - 1
    if "decoder_input_ids" not in named and "attention_mask" in named:
        real = _array(named["attention_mask"])[0].nonzero()[0]
        if len(real) and real[-1] < logits.shape[0]:
            position = int(real[-1])
    probabilities = _softmax(logits[position])
    best = int(probabilities.argmax())
    return f'next token: "{text([best])}" {_p(float(probabilities[best]))} (of {probabilities.shape[0]})'


def _pooled(inputs: Any, hidden: Any) -> str:
    """Mean-pooled embeddings of the first two rows, over their real tokens."""
    rows = []
    mask = (
        _array(inputs["attention_mask"])
        if isinstance(inputs, Mapping) and "attention_mask" in inputs
        else None
    )
    for index in range(min(2, hidden.shape[0])):
        tokens = hidden[index]
        if mask is not None and mask.shape[-1] == tokens.shape[0]:
            tokens = tokens[mask[index].astype(bool)]
        rows.append(tokens.mean(axis=0))
    ids = _array(inputs["input_ids"]) if isinstance(inputs, Mapping) and "input_ids" in inputs else None
    texts = list(ids[:2]) if ids is not None else [None]
    return _embeddings(rows, texts)
