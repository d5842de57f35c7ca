"""Mode `from_pretrained`: the registry's model class, one forward pass, shape and value checks; and
greedy generation with transformers' own `generate` and cache (`runners.generation`)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.errors import CheckFailed
from pytest_hfmodels.model_folder import transformers_class
from pytest_hfmodels.registry.model import ModelEntry
from pytest_hfmodels.runners import checks
from pytest_hfmodels.runners.devices import precision_name, torch_device
from pytest_hfmodels.runners.threads import limit_torch_threads
from pytest_hfmodels.samples import (
    DECODER_LENGTH,
    POINT_PROMPTED,
    SAMPLE_IMAGE_QUESTION,
    SAMPLE_LABELS,
    SAMPLE_SOUND_LABELS,
    SAMPLE_TEXT,
    SAMPLE_VIDEO_LABELS,
    ensure_pad_token,
    image_size,
    prompted_images,
    sample_audio,
    sample_images,
    sample_shape,
    sample_videos,
    text_of_tokens,
)

if TYPE_CHECKING:
    from pytest_hfmodels.runners.generation import GenerationInputs, GenerationRun

#: per contrastive task, the output scoring each image, sound or video against every text
_CONTRASTIVE_LOGITS = {
    "zero-shot-image-classification": "logits_per_image",
    "zero-shot-audio-classification": "logits_per_audio",
    "zero-shot-video-classification": "logits_per_video",
}


class FromPretrainedRunner:
    mode = "from_pretrained"

    def __init__(self, entry: ModelEntry, device: Device) -> None:
        self.entry = entry
        self.device = device
        self.model: Any = None
        self.preprocessor: Any = None
        self.precision: str | None = None
        self.threads: int | None = None
        self.threads_used: int | None = None
        self.model_dir: Path | None = None  #: the folder `load` read; generation's preprocessors come from it
        self.generation_export: Any = None  #: no export: PyTorch generates with its own cache
        self.generation_load_s: float | None = None
        self._generation_preprocessors: Any = None
        self._positions: tuple[int | None] | None = None  #: (learned decoder positions,), once known

    def load(self, model_dir: Path) -> None:
        import transformers

        self.threads_used = limit_torch_threads(self.threads)
        self.model_dir = model_dir
        transformers.logging.disable_progress_bar()
        model_class = transformers_class(self.entry.architecture, where=f"model {self.entry.key!r}")
        self.model = model_class.from_pretrained(model_dir).to(torch_device(self.device)).eval()
        self.precision = precision_name(self.model.dtype)
        loaders = {
            "text": transformers.AutoTokenizer,
            "vision": transformers.AutoImageProcessor,
            "audio": transformers.AutoFeatureExtractor,
        }
        loader = loaders.get(self.entry.modality, transformers.AutoProcessor)
        if self.entry.task == "mask-generation":
            loader = transformers.AutoProcessor  # it scales the point prompts to the resized image
        self.preprocessor = loader.from_pretrained(model_dir)
        if self.entry.modality == "text":
            ensure_pad_token(self.preprocessor)

    def make_inputs(self, batch_size: int = 1, input_size: int | None = None) -> dict[str, Any]:
        import torch

        config = self.model.config
        if self.entry.modality == "text" and input_size is not None:
            # Exactly `input_size` tokens: a text long enough, truncated by the model's tokenizer.
            text = text_of_tokens(input_size)
            encoded = dict(
                self.preprocessor(
                    [text] * batch_size, return_tensors="pt", truncation=True, max_length=input_size
                )
            )
        elif self.entry.modality == "text":
            encoded = dict(self.preprocessor([SAMPLE_TEXT] * batch_size, return_tensors="pt", padding=True))
        elif self.entry.task == "mask-generation":  # images with point prompts, as the exported modes get
            encoded = prompted_images(
                self.preprocessor, config, sample_shape(POINT_PROMPTED, batch_size, None), "pt"
            )
            # The processor gives float64 points (MPS has no float64); the model computes in float32.
            encoded["input_points"] = encoded["input_points"].float()
        elif self.entry.modality == "vision":
            images = sample_images(config, batch_size)
            encoded = dict(self.preprocessor(images=images, return_tensors="pt"))
        elif self.entry.task == "image-text-to-text":  # one question per image, after its image token
            images = sample_images(config, batch_size)
            prompts = [f"{self.preprocessor.image_token} {SAMPLE_IMAGE_QUESTION}"] * batch_size
            encoded = dict(self.preprocessor(images=images, text=prompts, return_tensors="pt", padding=True))
        elif self.entry.task == "zero-shot-video-classification":  # videos and the labels to score them
            videos = sample_videos(config, batch_size)
            encoded = dict(
                self.preprocessor(
                    text=list(SAMPLE_VIDEO_LABELS), videos=videos, return_tensors="pt", padding=True
                )
            )
        elif self.entry.modality == "multimodal" and hasattr(self.preprocessor, "feature_extractor"):
            # Sounds and the texts a contrastive audio-text model (CLAP) pairs them with.
            rate = self.preprocessor.feature_extractor.sampling_rate
            sounds = [sample_audio(rate, input_size or 1)] * batch_size
            encoded = dict(
                self.preprocessor(
                    text=list(SAMPLE_SOUND_LABELS),
                    audio=sounds,
                    sampling_rate=rate,
                    return_tensors="pt",
                    padding=True,
                )
            )
        elif self.entry.modality == "multimodal":  # images and the texts a contrastive model pairs them with
            images = sample_images(config, batch_size)
            encoded = dict(
                self.preprocessor(text=list(SAMPLE_LABELS), images=images, return_tensors="pt", padding=True)
            )
        else:
            rate = self.preprocessor.sampling_rate
            encoded = dict(
                self.preprocessor(
                    [sample_audio(rate, input_size or 1)] * batch_size,
                    sampling_rate=rate,
                    return_tensors="pt",
                )
            )
            encoded.pop("attention_mask", None)
        # DETR is an encoder-decoder too, over learned queries: only token decoders take ids.
        if getattr(config, "is_encoder_decoder", False) and _takes(self.model, "decoder_input_ids"):
            start = config.decoder_start_token_id
            encoded["decoder_input_ids"] = torch.full((batch_size, DECODER_LENGTH), start, dtype=torch.long)
        target = torch_device(self.device)
        return {name: value.to(target) for name, value in encoded.items()}

    def infer(self, inputs: dict[str, Any]) -> dict[str, Any]:
        import torch

        with torch.inference_mode():
            outputs = self.model(**inputs)
        return {
            name: value.detach().float().cpu().numpy()
            for name, value in outputs.items()
            if torch.is_tensor(value)
        }

    def check(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        # The batch is the images' or sounds' where there are some (a contrastive model also gets texts).
        first = next((inputs[k] for k in ("pixel_values", "input_features") if k in inputs), None)
        batch = (first if first is not None else next(iter(inputs.values()))).shape[0]
        contrastive = _CONTRASTIVE_LOGITS.get(self.entry.task)
        for name, expected in self._expected_shapes(inputs, batch, contrastive).items():
            if name not in outputs:
                raise CheckFailed(f"from_pretrained: output {name!r} missing (got {sorted(outputs)})")
            checks.check_shape(f"{self.entry.architecture}.{name}", outputs[name].shape, expected)
        for name, values in outputs.items():
            checks.check_finite(f"{self.entry.architecture}.{name}", values)
        if contrastive:
            checks.check_contrastive(
                f"{self.entry.architecture}.{contrastive}", outputs[contrastive], outputs["logits_per_text"]
            )
        again = self.infer(inputs)
        for name, values in outputs.items():
            checks.check_identical(f"{self.entry.architecture}.{name}", values, again[name])

    def _expected_shapes(
        self, inputs: dict[str, Any], batch: int, contrastive: str | None = None
    ) -> dict[str, tuple[int | None, ...]]:
        """Output shapes that follow from the config and the input; `contrastive`: the output
        scoring each image, sound or video against every text, for a contrastive model."""
        config = self.model.config
        if "decoder_input_ids" in inputs:
            length: int | None = inputs["decoder_input_ids"].shape[1]
        elif "input_ids" in inputs:
            length = inputs["input_ids"].shape[1]
        elif self.entry.modality == "vision" and hasattr(config, "patch_size"):
            height, width = image_size(config)
            length = (height // config.patch_size) * (width // config.patch_size) + 1
        else:
            length = None
        shapes: dict[str, tuple[int | None, ...]] = {}
        if "input_points" in inputs:
            # Promptable segmentation (SAM): candidate masks per prompt and their predicted IoU; the
            # mask decoder upscales the image embedding's grid 4x (two stride-2 transposed convolutions).
            prompts = inputs["input_points"].shape[1]
            masks = config.mask_decoder_config.num_multimask_outputs
            side = 4 * config.prompt_encoder_config.image_embedding_size
            shapes["iou_scores"] = (batch, prompts, masks)
            shapes["pred_masks"] = (batch, prompts, masks, side, side)
        elif contrastive:  # one score per image (sound, video) and text
            texts = inputs["input_ids"].shape[0]
            shapes[contrastive] = (batch, texts)
            shapes["logits_per_text"] = (texts, batch)
        elif self.entry.architecture.endswith("ForObjectDetection") and hasattr(config, "num_queries"):
            # DETR-style: one class distribution (labels + "no object") and one box per query.
            shapes["logits"] = (batch, config.num_queries, config.num_labels + 1)
            shapes["pred_boxes"] = (batch, config.num_queries, 4)
        elif self.entry.architecture.endswith(("ForImageClassification", "ForSequenceClassification")):
            shapes["logits"] = (batch, config.num_labels)
        elif self.entry.architecture.endswith(
            ("ForMaskedLM", "LMHeadModel", "ForCausalLM", "ForConditionalGeneration")
        ):
            # Vision-language models keep the vocabulary in their text model's config.
            vocab = getattr(config, "vocab_size", None) or config.get_text_config().vocab_size
            shapes["logits"] = (batch, length, vocab)
        elif self.entry.architecture.endswith("ForCTC"):  # one frame per conv stride, whatever it is
            shapes["logits"] = (batch, None, config.vocab_size)
        else:
            shapes["last_hidden_state"] = (batch, length, config.hidden_size)
        return shapes

    def make_generation_inputs(self, batch_size: int = 1, input_size: int | None = None) -> GenerationInputs:
        """The same prompts as the exported modes get (`runners.generation.build_generation_inputs`), as
        torch tensors on the model's device. GenerationUnsupportedError for models that do not generate."""
        import torch

        from pytest_hfmodels.runners.generation import build_generation_inputs, with_decoder_prompt

        layout, pre = self._generation_setup()
        inputs = build_generation_inputs(layout, pre, batch_size, input_size)
        target = torch_device(self.device)
        # Features in the model's own dtype (ids stay int64): a model loaded in bf16 takes bf16 features.
        tensors = {
            name: torch.from_numpy(value).to(target, self.model.dtype if value.dtype.kind == "f" else None)
            for name, value in inputs.tensors.items()
        }
        inputs = dataclasses.replace(inputs, tensors=tensors)
        return inputs if not layout.encoder_inputs else with_decoder_prompt(self.model, inputs)

    def generate(self, inputs: GenerationInputs, new_tokens: int) -> GenerationRun:
        """transformers' greedy `generate` of exactly `new_tokens` tokens per row, timed per step."""
        from pytest_hfmodels.runners.generation import check_positions, learned_positions, pytorch_generate

        layout, _ = self._generation_setup()
        if self._positions is None:
            self._positions = (learned_positions(self.model),)
        check_positions(self._positions[0], inputs, new_tokens, layout.model_type)
        return pytorch_generate(self.model, inputs, new_tokens)

    def check_generation(self, inputs: GenerationInputs, run: GenerationRun) -> None:
        """batch x new_tokens tokens, each an id of the model's vocabulary (its output embedding's rows)."""
        from pytest_hfmodels.runners.generation import shape_problem

        problem = shape_problem(run, inputs.batch_size)
        if problem:
            raise CheckFailed(f"{self.entry.architecture}.generate: {problem}")
        vocab = int(self.model.get_output_embeddings().weight.shape[0])
        for row, tokens in enumerate(run.tokens):
            for step, token in enumerate(tokens):
                if not 0 <= token < vocab:
                    raise CheckFailed(
                        f"{self.entry.architecture}.generate: token {token} at batch row {row}, step {step} "
                        f"is outside the vocabulary (0..{vocab - 1})"
                    )

    def decode(self, run: GenerationRun) -> list[str]:
        """The generated text of each row, by the model's tokenizer, special tokens skipped."""
        _, pre = self._generation_setup()
        texts = pre.tokenizer.batch_decode([list(r) for r in run.tokens], skip_special_tokens=True)
        return [str(text) for text in texts]

    def _generation_setup(self) -> tuple[Any, Any]:
        """The model's generation layout and its tokenizer and feature extractor (loaded once)."""
        from pytest_hfmodels.convert.onnx.specs import load_preprocessors
        from pytest_hfmodels.convert.onnx.with_past import generation_layout
        from pytest_hfmodels.model_folder import read_config

        if self.model_dir is None:
            raise RuntimeError("from_pretrained: load() the model before generating")
        layout = generation_layout(read_config(self.model_dir), str(self.model_dir / "config.json"))
        if self._generation_preprocessors is None:
            self._generation_preprocessors = load_preprocessors(self.model_dir)
        return layout, self._generation_preprocessors

    def close(self) -> None:
        self.model = self.preprocessor = None
        self._generation_preprocessors = None


def _takes(model: Any, parameter: str) -> bool:
    return parameter in inspect.signature(model.forward).parameters


RUNNER = FromPretrainedRunner
