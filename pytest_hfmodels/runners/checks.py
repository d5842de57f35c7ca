"""Behavioural checks on model outputs: assertions that fail when a model or runtime is broken.

Pure functions over plain Python and numpy values, so every runner shares them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pytest_hfmodels.errors import CheckFailed


def check_fill_mask(predictions: Sequence[Mapping[str, Any]], top_k: int) -> None:
    if len(predictions) != top_k:
        raise CheckFailed(f"fill-mask: expected {top_k} predictions, got {len(predictions)}")
    scores = [float(p["score"]) for p in predictions]
    if not all(0.0 <= s <= 1.0 for s in scores):
        raise CheckFailed(f"fill-mask: scores outside [0, 1]: {scores}")
    if scores != sorted(scores, reverse=True):
        raise CheckFailed(f"fill-mask: scores not in descending order: {scores}")
    if not all(isinstance(p.get("token_str"), str) for p in predictions):
        raise CheckFailed("fill-mask: a prediction has no token string")


def check_count(what: str, found: int, expected: int) -> None:
    if found != expected:
        raise CheckFailed(f"{what}: {found} results for {expected} inputs")


def check_new_tokens(prompt_length: int, generated_length: int, what: str) -> None:
    if generated_length <= prompt_length:
        raise CheckFailed(f"{what}: no new tokens (prompt {prompt_length}, output {generated_length} tokens)")


def check_labels(predictions: Sequence[Mapping[str, Any]], id2label: Mapping[Any, str]) -> None:
    allowed = set(id2label.values())
    labels = [p["label"] for p in predictions]
    if not labels or not set(labels) <= allowed:
        raise CheckFailed(
            f"image-classification: labels {labels} not all in the config's id2label {sorted(allowed)}"
        )
    scores = [float(p["score"]) for p in predictions]
    if not all(0.0 <= s <= 1.0 for s in scores) or scores != sorted(scores, reverse=True):
        raise CheckFailed(f"image-classification: scores not in [0, 1] and descending: {scores}")


def check_detections(
    detections: Sequence[Mapping[str, Any]], id2label: Mapping[Any, str], width: int, height: int
) -> None:
    """Each detection: a known label, a score in [0, 1], a box inside the image with min <= max."""
    if not detections:
        raise CheckFailed("object-detection: no detections at threshold 0 (the model returned no queries)")
    allowed = set(id2label.values())
    for found in detections:
        box = found.get("box") or {}
        if found.get("label") not in allowed or not 0.0 <= float(found.get("score", -1)) <= 1.0:
            raise CheckFailed(f"object-detection: label or score out of range: {found!r:.200}")
        inside = 0 <= box.get("xmin", -1) <= box.get("xmax", -1) <= width and (
            0 <= box.get("ymin", -1) <= box.get("ymax", -1) <= height
        )
        if not inside:
            raise CheckFailed(f"object-detection: box {box} is not inside the {width}x{height} image")


def check_masks(generated: Mapping[str, Any], width: int, height: int) -> None:
    """mask-generation on one image: at least one mask, each a boolean mask of the image's size,
    and one finite score per mask."""
    masks = list(generated.get("masks") or [])
    scores = [float(s) for s in generated.get("scores", [])]  # a tensor, maybe on the device
    if not masks:
        raise CheckFailed("mask-generation: no masks with every threshold at 0")
    if len(scores) != len(masks):
        raise CheckFailed(f"mask-generation: {len(scores)} scores for {len(masks)} masks")
    for mask in masks:
        array = np.asarray(mask)
        if array.shape != (height, width) or array.dtype != np.bool_:
            raise CheckFailed(
                f"mask-generation: a mask of shape {array.shape} and dtype {array.dtype}, "
                f"expected a boolean ({height}, {width}) mask of the {width}x{height} image"
            )
    if not np.isfinite(scores).all():
        raise CheckFailed(f"mask-generation: non-finite scores {scores}")


def check_zero_shot(task: str, predictions: Sequence[Mapping[str, Any]], candidates: Sequence[str]) -> None:
    """Every candidate label once, scores a distribution over them, highest first."""
    labels = [p["label"] for p in predictions]
    if sorted(labels) != sorted(candidates):
        raise CheckFailed(f"{task}: labels {labels}, expected each of {list(candidates)}")
    scores = [float(p["score"]) for p in predictions]
    if abs(sum(scores) - 1.0) > 1e-3 or scores != sorted(scores, reverse=True):
        raise CheckFailed(f"{task}: scores {scores} do not sum to 1 in descending order")


def check_contrastive(name: str, logits: np.ndarray, logits_per_text: np.ndarray) -> None:
    """A contrastive model's scores: `logits` (one row per image, sound or video, one column per
    text) seen from the texts. CLAP scales each view by a temperature of its own, so the two views
    need only agree up to a positive factor; a loose tolerance lets half precision through. (That
    the scores are finite, all a softmax over them needs, check_finite has already said.)"""
    if logits_per_text.shape != logits.shape[::-1]:
        shapes = f"{logits_per_text.shape}, not {logits.shape[::-1]}"
        raise CheckFailed(f"{name}: logits_per_text has shape {shapes}")
    scores = np.asarray(logits, dtype=np.float64)
    seen = np.asarray(logits_per_text, dtype=np.float64).T
    norm = float((scores * scores).sum())
    factor = float((seen * scores).sum()) / norm if norm > 0 else 1.0
    largest = float(np.abs(scores).max(initial=0.0))
    if not factor > 0 or not np.allclose(seen, factor * scores, rtol=1e-3, atol=1e-3 * largest):
        raise CheckFailed(f"{name}: logits_per_text is not these scores transposed (up to a positive factor)")


def check_transcription(output: Any) -> None:
    if not isinstance(output, Mapping) or not isinstance(output.get("text"), str):
        raise CheckFailed(f"automatic-speech-recognition: expected {{'text': str}}, got {output!r:.200}")


def sentence_embedding(token_embeddings: Any) -> np.ndarray:
    """Mean pooling over tokens, then L2 normalisation (what sentence-transformers does)."""
    tokens = np.asarray(token_embeddings, dtype=np.float64).reshape(-1, np.shape(token_embeddings)[-1])
    pooled = tokens.mean(axis=0)
    normalised: np.ndarray = pooled / np.linalg.norm(pooled)
    return normalised


def check_similarity(
    embedding_a: np.ndarray, embedding_b: np.ndarray, expected: float, tolerance: float
) -> float:
    cosine = float(np.dot(embedding_a, embedding_b))
    if abs(cosine - expected) > tolerance:
        raise CheckFailed(
            f"feature-extraction: cosine similarity {cosine:.4f}, expected {expected} +- {tolerance}"
        )
    return cosine


def check_finite(name: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        raise CheckFailed(f"{name}: {int((~np.isfinite(values)).sum())} non-finite values")


def check_shape(name: str, actual: Sequence[int], expected: Sequence[int | None]) -> None:
    """`expected` may hold None for a dimension the config does not determine."""
    ok = len(actual) == len(expected) and all(
        e is None or a == e for a, e in zip(actual, expected, strict=False)
    )
    if not ok:
        shown = tuple("?" if e is None else e for e in expected)
        raise CheckFailed(f"{name}: shape {tuple(actual)}, expected {shown}")


def check_identical(name: str, first: np.ndarray, second: np.ndarray) -> None:
    if first.shape != second.shape or not np.array_equal(first, second):
        diff = float(np.max(np.abs(first - second))) if first.shape == second.shape else float("nan")
        raise CheckFailed(f"{name}: two calls on the same input differ (max abs diff {diff:.3g})")
