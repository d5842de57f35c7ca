"""Mode `pipeline`: the family's task through `transformers.pipeline`, with task-specific checks.

transformers 5 removed the text2text-generation pipeline, so that task runs the model's own
tokenizer and `generate`, which is what the pipeline did.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.errors import CheckFailed, DependencyImportError
from pytest_hfmodels.model_folder import transformers_class
from pytest_hfmodels.registry.model import ModelEntry
from pytest_hfmodels.runners import checks
from pytest_hfmodels.runners.devices import precision_name, torch_device
from pytest_hfmodels.runners.threads import limit_torch_threads
from pytest_hfmodels.samples import (
    SAMPLE_IMAGE_QUESTION,
    SAMPLE_LABELS,
    SAMPLE_PROMPT,
    SAMPLE_SOUND_LABELS,
    SAMPLE_TEXT,
    SAMPLE_TEXT2TEXT,
    ensure_pad_token,
    sample_audio,
    sample_images,
)

_MAX_NEW_TOKENS = 8
#: the candidate labels each zero-shot task is given
_ZERO_SHOT_LABELS = {
    "zero-shot-image-classification": SAMPLE_LABELS,
    "zero-shot-audio-classification": SAMPLE_SOUND_LABELS,
}
_TOP_K = 3
#: tasks whose pipeline takes the sample images alone
_IMAGE_TASKS = (
    "image-classification",
    "object-detection",
    "zero-shot-image-classification",
    "mask-generation",
)
#: packages a task's pipeline imports only when it post-processes, after the model has run:
#: mask-generation's non-maximum suppression is torchvision's
_TASK_PACKAGES = {"mask-generation": ("torchvision",)}
#: mask-generation prompts a grid of this many points a side (the pipeline's default, 32, gives 1024
#: points an image: 16 mask decoder runs and thousands of masks to post-process for each image)
_MASK_GRID_SIDE = 8


class PipelineRunner:
    mode = "pipeline"

    def __init__(self, entry: ModelEntry, device: Device) -> None:
        self.entry = entry
        self.device = device
        self.pipe: Any = None
        self.model: Any = None
        self.tokenizer: Any = None
        self.precision: str | None = None
        self.threads: int | None = None
        self.threads_used: int | None = None

    def load(self, model_dir: Path) -> None:
        import transformers

        for package in _TASK_PACKAGES.get(self.entry.task, ()):
            _import_for(package, f"mode 'pipeline' of task {self.entry.task!r}")
        self.threads_used = limit_torch_threads(self.threads)
        transformers.logging.disable_progress_bar()
        if self.entry.task == "text2text-generation":
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
            model_class = transformers_class(self.entry.architecture, where=f"model {self.entry.key!r}")
            self.model = model_class.from_pretrained(model_dir).to(torch_device(self.device)).eval()
            self.precision = precision_name(self.model.dtype)
            return
        self.pipe = transformers.pipeline(
            self.entry.task, model=str(model_dir), device=torch_device(self.device)
        )
        self.precision = precision_name(self.pipe.model.dtype)
        ensure_pad_token(getattr(self.pipe, "tokenizer", None))  # a batched pipeline pads

    def make_inputs(self, batch_size: int = 1, input_size: int | None = None) -> Any:
        task = self.entry.task
        if task == "fill-mask":
            return [SAMPLE_TEXT.replace("capital", self.pipe.tokenizer.mask_token)] * batch_size
        if task == "text-generation":
            return [SAMPLE_PROMPT] * batch_size
        if task == "text2text-generation":
            encoded = self.tokenizer([SAMPLE_TEXT2TEXT] * batch_size, return_tensors="pt", padding=True)
            return encoded.to(torch_device(self.device))
        if task == "feature-extraction":
            similarity = self.entry.expect.get("similarity")
            sentences = list(similarity["sentences"]) if similarity else [SAMPLE_TEXT]
            return [sentences[i % len(sentences)] for i in range(batch_size)]
        if task in _IMAGE_TASKS:
            return sample_images(self.pipe.model.config, batch_size)
        if task == "image-text-to-text":
            prompt = f"{self.pipe.processor.image_token} {SAMPLE_IMAGE_QUESTION}"
            images = sample_images(self.pipe.model.config, batch_size)
            return {"images": images, "text": [prompt] * batch_size}
        if task == "zero-shot-audio-classification":
            rate = self.pipe.feature_extractor.sampling_rate
            return [sample_audio(rate, input_size or 1) for _ in range(batch_size)]
        if task == "automatic-speech-recognition":
            rate = self.pipe.feature_extractor.sampling_rate
            seconds = input_size or 1
            return [{"raw": sample_audio(rate, seconds), "sampling_rate": rate} for _ in range(batch_size)]
        raise CheckFailed(f"pipeline: no sample input for task {task!r}; use the from_pretrained mode")

    def infer(self, inputs: Any) -> Any:
        task = self.entry.task
        if task == "text2text-generation":
            import torch

            with torch.inference_mode():
                return self.model.generate(**inputs, max_new_tokens=_MAX_NEW_TOKENS, do_sample=False)
        if task == "image-text-to-text":
            return self.pipe(
                images=inputs["images"],
                text=inputs["text"],
                generate_kwargs={"max_new_tokens": _MAX_NEW_TOKENS, "do_sample": False},
                return_tensors=True,
                batch_size=len(inputs["images"]),
            )
        # The case's batch is one pipeline batch: without batch_size a pipeline runs a list one by one.
        batch = {"batch_size": len(inputs)}
        if task == "fill-mask":
            return self.pipe(inputs, top_k=_TOP_K, **batch)
        if task == "text-generation":
            return self.pipe(
                inputs, max_new_tokens=_MAX_NEW_TOKENS, do_sample=False, return_tensors=True, **batch
            )
        if task == "image-classification":
            return self.pipe(inputs, top_k=min(_TOP_K, len(self.pipe.model.config.id2label)), **batch)
        if task in _ZERO_SHOT_LABELS:
            return self.pipe(inputs, candidate_labels=list(_ZERO_SHOT_LABELS[task]), **batch)
        if task == "object-detection":
            # Every query's box, whatever its score: the checks look at all of them.
            return self.pipe(inputs, threshold=0.0, **batch)
        if task == "mask-generation":
            # Every mask, whatever its predicted IoU and stability: a random tiny model's are low, and
            # the checks look at all of them. Each image is one batch of the grid's points: the
            # pipeline cannot batch images (its forward post-processes one image, and fails unpacking
            # the image sizes of more), so without batch_size they run one after another.
            return self.pipe(
                inputs,
                points_per_crop=_MASK_GRID_SIDE,
                points_per_batch=_MASK_GRID_SIDE**2,
                pred_iou_thresh=0.0,
                stability_score_thresh=0.0,
            )
        if task == "automatic-speech-recognition":
            # Some transformers releases pop "raw" from the dicts they are given: pass copies, so
            # the same inputs can be timed again.
            copies = [dict(item) for item in inputs]
            return self.pipe(copies, generate_kwargs={"max_new_tokens": _MAX_NEW_TOKENS}, **batch)
        return self.pipe(inputs, **batch)

    def check(self, inputs: Any, outputs: Any) -> None:
        task = self.entry.task
        if task == "fill-mask":
            for predictions in _per_input(outputs, len(inputs)):
                checks.check_fill_mask(predictions, _TOP_K)
        elif task == "text-generation":
            prompt_length = len(self.pipe.tokenizer(inputs[0])["input_ids"])
            for generated in _per_input(outputs, len(inputs)):
                checks.check_new_tokens(
                    prompt_length, len(generated[0]["generated_token_ids"]), "text-generation"
                )
        elif task == "text2text-generation":
            # generate() output starts with the decoder start token: anything beyond it is new.
            checks.check_new_tokens(1, int(outputs.shape[-1]), "text2text-generation (generate)")
        elif task == "image-classification":
            for predictions in _per_input(outputs, len(inputs)):
                checks.check_labels(predictions, self.pipe.model.config.id2label)
        elif task == "image-text-to-text":
            first = self.pipe.processor(images=inputs["images"][:1], text=inputs["text"][:1])
            prompt_length = len(first["input_ids"][0])  # image tokens expanded, as the model sees it
            generated = [o[0] if isinstance(o, list) else o for o in outputs]
            checks.check_count("image-text-to-text", len(generated), len(inputs["images"]))
            for result in generated:
                checks.check_new_tokens(prompt_length, len(result["generated_token_ids"]), task)
        elif task in _ZERO_SHOT_LABELS:
            for predictions in _per_input(outputs, len(inputs)):
                checks.check_zero_shot(task, predictions, _ZERO_SHOT_LABELS[task])
        elif task == "object-detection":
            for image, detections in zip(inputs, _per_input(outputs, len(inputs)), strict=True):
                checks.check_detections(detections, self.pipe.model.config.id2label, *image.size)
        elif task == "mask-generation":  # one dict an image, not unwrapped for a single image
            results = [outputs] if isinstance(outputs, dict) else outputs
            checks.check_count(task, len(results), len(inputs))
            for image, generated in zip(inputs, results, strict=True):
                checks.check_masks(generated, *image.size)
        elif task == "automatic-speech-recognition":
            for transcription in outputs:
                checks.check_transcription(transcription)
        elif task == "feature-extraction":
            self._check_embeddings(inputs, outputs)

    def _check_embeddings(self, inputs: list[str], outputs: Any) -> None:
        import numpy as np

        hidden = self.pipe.model.config.hidden_size
        for text, tokens in zip(inputs, outputs, strict=True):
            array = np.asarray(tokens, dtype=np.float32)
            checks.check_shape("feature-extraction", array.shape, (1, None, hidden))
            checks.check_finite("feature-extraction", array)
            tokens_in = self._token_count(text)
            if array.shape[1] < tokens_in:
                raise CheckFailed(f"feature-extraction: {array.shape[1]} embeddings for {tokens_in} tokens")
        similarity = self.entry.expect.get("similarity")
        if similarity:
            sentences = list(similarity["sentences"])
            # A batch of one holds only the first sentence: embed the pair for the check.
            pair = outputs[:2] if len(outputs) >= 2 else self.pipe(sentences)
            # A batched pipeline returns the padded length: pool over each sentence's own tokens,
            # as sentence-transformers does with its attention mask.
            first, second = (
                checks.sentence_embedding(np.asarray(o)[:, : self._token_count(s)])
                for o, s in zip(pair, sentences, strict=False)
            )
            checks.check_similarity(
                first, second, float(similarity["cosine"]), float(similarity["tolerance"])
            )

    def _token_count(self, text: str) -> int:
        return len(self.pipe.tokenizer(text)["input_ids"])

    def close(self) -> None:
        self.pipe = self.model = self.tokenizer = None


def _import_for(package: str, needed_for: str) -> None:
    """Import `package` now, so that a case that cannot post-process skips before it runs."""
    try:
        importlib.import_module(package)
    except Exception as exc:  # absent, or failing as it loads (compiled for another torch, say)
        first_line = next(iter(str(exc).strip().splitlines()), "")
        raise DependencyImportError(package, needed_for, f"{type(exc).__name__}: {first_line}") from exc


def _per_input(outputs: Any, count: int) -> list[Any]:
    """One result per input: some pipelines unwrap the result of a one-element input list."""
    if count == 1 and not (isinstance(outputs, list) and outputs and isinstance(outputs[0], list)):
        return [outputs]
    return list(outputs)


RUNNER = PipelineRunner
