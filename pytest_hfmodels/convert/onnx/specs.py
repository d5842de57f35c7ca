"""Export specs: what an ONNX export of a family takes, returns and may vary, chosen from config.json.

A spec is data: input names in graph order, the output names to keep, the dynamic axes of each
input, the preferred exporter and the shapes used to export and to validate. A family without a
spec gets one derived from its model class's forward signature and what its own tokenizer or
processor produces. Sample inputs are always made by the model's own preprocessor.

Models that take text with images, sounds or videos in one call have specs of their own: contrastive
dual encoders (CLIP, CLAP, X-CLIP) score every text against every image, sound or video, so their texts
are a batch of their own; vision-language models (LLaVA, LLaVA-NeXT) take one prompt per image, holding
that image's tokens. Promptable segmentation models (SAM) take point prompts with their images, and
return masks and their predicted quality, which no other family's spec keeps.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_hfmodels.errors import ModelConversionError
from pytest_hfmodels.model_folder import architecture_class
from pytest_hfmodels.model_folder import read_config as read_model_config
from pytest_hfmodels.samples import (
    POINT_PROMPTED,
    VARIED_TEXTS,
    InputShape,
    Preprocessors,
    ensure_pad_token,
    model_inputs,
    sample_audio,
    sample_image,
)

EXPORTERS = ("legacy", "dynamo")
DEFAULT_OPSET = 18
#: candidate outputs, kept in this order when the model returns them (heads give logits, bases hidden states)
#: (detectors add one box per query: pred_boxes)
OUTPUT_CANDIDATES = ("logits", "pred_boxes", "last_hidden_state", "encoder_last_hidden_state")
#: candidate outputs of contrastive text-image and text-audio models: the scores each way, then the
#: embeddings they come from. Not part of OUTPUT_CANDIDATES, which is the default of every other spec:
#: their JSON, and so the cache keys of their conversions, stay as they were.
CONTRASTIVE_OUTPUTS = (
    "logits_per_image",
    "logits_per_audio",
    "logits_per_text",
    "image_embeds",
    "audio_embeds",
    "text_embeds",
)
#: the same for contrastive text-video models (X-CLIP). A tuple of its own: CONTRASTIVE_OUTPUTS is the
#: `outputs` of the CLIP and CLAP specs, so extending it would change their JSON and cache keys.
CONTRASTIVE_VIDEO_OUTPUTS = ("logits_per_video", "logits_per_text", "video_embeds", "text_embeds")


@dataclass(frozen=True)
class ExportSpec:
    """How to export one family to ONNX."""

    name: str  #: the family, or "derived-<model_type>"
    #: text | vision | audio | text-image | text-audio | text-video | image-prompt | image-points:
    #: what makes the inputs
    modality: str
    inputs: tuple[str, ...]  #: graph input names, in forward order
    dynamic_axes: Mapping[str, Mapping[int, str]]  #: input name -> {axis: symbolic name}
    outputs: tuple[str, ...] = OUTPUT_CANDIDATES  #: kept when the model returns them, in this order
    exporter: str = "legacy"  #: preferred exporter; the other one is the fallback
    opset: int = DEFAULT_OPSET
    forward_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    export_shape: InputShape = InputShape(1, 8, 4)
    #: differs from export_shape in every dynamic axis, so validation proves them dynamic
    validate_shape: InputShape = InputShape(2, 13, 6)
    #: a module of `wrappers.WRAPPERS` that runs the model where its own forward cannot be traced
    #: with dynamic axes; None: the model's forward
    wrapper: str | None = None

    def sample_inputs(self, pre: Preprocessors, config: Any, shape: InputShape) -> dict[str, Any]:
        """The spec's inputs at `shape`, in graph order, made by the model's own preprocessors."""
        return model_inputs(self.modality, self.inputs, pre, config, shape, f"export spec {self.name!r}")

    @property
    def fallback(self) -> str:
        return next(e for e in EXPORTERS if e != self.exporter)

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data: the cache key and conversion.json are made of it."""
        return {
            "name": self.name,
            "modality": self.modality,
            "inputs": list(self.inputs),
            "dynamic_axes": {k: {str(a): n for a, n in v.items()} for k, v in self.dynamic_axes.items()},
            "outputs": list(self.outputs),
            "exporter": self.exporter,
            "opset": self.opset,
            "forward_kwargs": dict(self.forward_kwargs),
            "export_shape": self.export_shape.as_json(),
            "validate_shape": self.validate_shape.as_json(),
            # Added later: present only when set, so the specs made before it keep their cache keys.
            **({"wrapper": self.wrapper} if self.wrapper is not None else {}),
        }


def _axes(**names: Mapping[int, str]) -> Mapping[str, Mapping[int, str]]:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in names.items()})


_TEXT = {0: "batch", 1: "sequence"}
_DECODER = {0: "batch", 1: "decoder_sequence"}
_BATCH = {0: "batch"}
#: the texts of a contrastive model: a batch of their own, independent of the images' or sounds'
_TEXT_BATCH = {0: "text_batch", 1: "sequence"}
_NO_CACHE = MappingProxyType({"use_cache": False})  # past key values would add outputs per layer

#: specs by config.json model_type. Every family prefers the legacy exporter: on these models it
#: is 10-20x faster than dynamo and exports them all; dynamo fails on T5 (a strided view it cannot
#: decompose), and is the fallback for the rest.
SPECS: Mapping[str, ExportSpec] = MappingProxyType(
    {
        "bert": ExportSpec(
            "bert",
            "text",
            ("input_ids", "attention_mask", "token_type_ids"),
            _axes(input_ids=_TEXT, attention_mask=_TEXT, token_type_ids=_TEXT),
        ),
        "distilbert": ExportSpec(
            "distilbert",
            "text",
            ("input_ids", "attention_mask"),
            _axes(input_ids=_TEXT, attention_mask=_TEXT),
        ),
        "roberta": ExportSpec(
            "roberta", "text", ("input_ids", "attention_mask"), _axes(input_ids=_TEXT, attention_mask=_TEXT)
        ),
        "gpt2": ExportSpec(
            "gpt2",
            "text",
            ("input_ids", "attention_mask"),
            _axes(input_ids=_TEXT, attention_mask=_TEXT),
            forward_kwargs=_NO_CACHE,
        ),
        "t5": ExportSpec(
            "t5",
            "text",
            ("input_ids", "attention_mask", "decoder_input_ids"),
            _axes(input_ids=_TEXT, attention_mask=_TEXT, decoder_input_ids=_DECODER),
            forward_kwargs=_NO_CACHE,
        ),
        # Whisper's encoder takes exactly 3000 mel frames, so only batch and decoder length vary. The
        # legacy exporter fails on aten::diff unless decoder_attention_mask is an explicit input.
        "whisper": ExportSpec(
            "whisper",
            "audio",
            ("input_features", "decoder_input_ids", "decoder_attention_mask"),
            _axes(input_features=_BATCH, decoder_input_ids=_DECODER, decoder_attention_mask=_DECODER),
            forward_kwargs=_NO_CACHE,
        ),
        # ViT's position embeddings fix the image size; only the batch varies.
        "vit": ExportSpec("vit", "vision", ("pixel_values",), _axes(pixel_values=_BATCH)),
        # Contrastive dual encoders: n images (sounds) and m texts give logits_per_image [n, m]. CLAP's
        # spectrograms are padded to a fixed length; is_longer only matters to fused models (refused
        # in spec_for), so it is no input.
        "clip": ExportSpec(
            "clip",
            "text-image",
            ("input_ids", "attention_mask", "pixel_values"),
            _axes(input_ids=_TEXT_BATCH, attention_mask=_TEXT_BATCH, pixel_values=_BATCH),
            outputs=CONTRASTIVE_OUTPUTS,
        ),
        "clap": ExportSpec(
            "clap",
            "text-audio",
            ("input_ids", "attention_mask", "input_features"),
            _axes(input_ids=_TEXT_BATCH, attention_mask=_TEXT_BATCH, input_features=_BATCH),
            outputs=CONTRASTIVE_OUTPUTS,
        ),
        # LLaVA's own forward turns the batch of image features into a Python list, which tracing
        # unrolls into a fixed batch: the "llava" wrapper runs the same modules without it. Prompts hold
        # image_seq_length image tokens, so the text lengths are longer than other families'.
        "llava": ExportSpec(
            "llava",
            "image-prompt",
            ("input_ids", "attention_mask", "pixel_values"),
            _axes(input_ids=_TEXT, attention_mask=_TEXT, pixel_values=_BATCH),
            outputs=("logits",),
            forward_kwargs=_NO_CACHE,
            export_shape=InputShape(1, 24),
            validate_shape=InputShape(2, 32),
            wrapper="llava",
        ),
        # X-CLIP: n videos of exactly vision_config.num_frames frames (the multi-frame transformer's
        # position embeddings) and m texts give logits_per_video [n, m].
        "xclip": ExportSpec(
            "xclip",
            "text-video",
            ("input_ids", "attention_mask", "pixel_values"),
            _axes(input_ids=_TEXT_BATCH, attention_mask=_TEXT_BATCH, pixel_values=_BATCH),
            outputs=CONTRASTIVE_VIDEO_OUTPUTS,
        ),
        # LLaVA-NeXT cuts each image into tiles by its size ("anyres"), and its forward packs each
        # image's features in a Python loop over the batch: the "llava_next" wrapper packs them as one
        # tensor, for one image size, the sample's (the vision tower's image_size, square), so the tile
        # count and the image tokens per prompt are fixed. image_sizes is an input, as the model's own
        # forward takes it; the wrapper refuses other sizes at export (see wrappers._llava_next_logits).
        "llava_next": ExportSpec(
            "llava_next",
            "image-prompt",
            ("input_ids", "attention_mask", "pixel_values", "image_sizes"),
            _axes(input_ids=_TEXT, attention_mask=_TEXT, pixel_values=_BATCH, image_sizes=_BATCH),
            outputs=("logits",),
            forward_kwargs=_NO_CACHE,
            export_shape=InputShape(1, 48),
            validate_shape=InputShape(2, 56),
            wrapper="llava_next",
        ),
        # SAM: images with point prompts give, per prompt, num_multimask_outputs candidate masks
        # (iou_scores [batch, prompts, masks], pred_masks [batch, prompts, masks, h, w]). The batch,
        # the prompts per image and the points per prompt all vary; input_labels is left out, as the
        # model then takes every point as foreground. Validation's three sizes differ from one another
        # so each output axis is named after the input axis it follows.
        "sam": ExportSpec(
            "sam",
            POINT_PROMPTED,
            ("pixel_values", "input_points"),
            _axes(
                pixel_values=_BATCH,
                input_points={0: "batch", 1: "point_prompts", 2: "points_per_prompt"},
            ),
            outputs=("iou_scores", "pred_masks"),
            export_shape=InputShape(1, point_prompts=1, points_per_prompt=1),
            validate_shape=InputShape(2, point_prompts=3, points_per_prompt=4),
        ),
    }
)


def spec_for(model_dir: Path, config: Mapping[str, Any] | None = None) -> ExportSpec:
    """The family's spec by config.json `model_type`, else one derived from the model itself."""
    config = read_config(model_dir) if config is None else config
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise ModelConversionError(f"{model_dir / 'config.json'}: no model_type to choose an export spec by")
    if model_type == "clap" and (config.get("audio_config") or {}).get("enable_fusion"):
        # Fused CLAP runs a second branch only for the clips is_longer marks: a trace fixes which.
        raise ModelConversionError(
            f"{model_dir / 'config.json'}: audio_config.enable_fusion is true; the CLAP export spec "
            "covers unfused models only (the fusion branch depends on is_longer's values)"
        )
    return SPECS[model_type] if model_type in SPECS else derive_spec(model_dir, config)


def model_class(model_dir: Path, config: Mapping[str, Any]) -> Any:
    """The transformers class config.json's `architectures` names (heads included)."""
    return architecture_class(model_dir, dict(config), ModelConversionError)


def read_config(model_dir: Path) -> dict[str, Any]:
    """config.json of a folder being converted; a problem with it is a ModelConversionError."""
    return read_model_config(model_dir, ModelConversionError)


def load_preprocessors(model_dir: Path, with_processor: bool = False) -> Preprocessors:
    """Load the preprocessors whose files the folder holds; the files decide, not the model's name.

    `with_processor`: also the AutoProcessor, where the folder has a processor_config.json or its
    preprocessor_config.json names a processor_class (folders saved before processor_config.json
    existed, such as facebook/sam-vit-base).
    """
    import transformers

    names = {p.name for p in model_dir.iterdir()}
    tokenizer = image_processor = feature_extractor = None
    if names & {"tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model"}:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        ensure_pad_token(tokenizer)
    data: dict[str, Any] = {}
    if "preprocessor_config.json" in names:
        data = json.loads((model_dir / "preprocessor_config.json").read_text(encoding="utf-8"))
        kind = str(data.get("image_processor_type") or data.get("feature_extractor_type") or "")
        if "image_processor_type" in data or "ImageProcessor" in kind:
            image_processor = transformers.AutoImageProcessor.from_pretrained(model_dir)
        else:
            feature_extractor = transformers.AutoFeatureExtractor.from_pretrained(model_dir)
    processor = None
    if with_processor and ("processor_config.json" in names or data.get("processor_class")):
        processor = transformers.AutoProcessor.from_pretrained(model_dir)
        ensure_pad_token(getattr(processor, "tokenizer", None))  # SAM's processor has none
    return Preprocessors(tokenizer, image_processor, feature_extractor, processor)


def derive_spec(model_dir: Path, config: Mapping[str, Any]) -> ExportSpec:
    """A spec for a family without one: forward parameters the preprocessor's output can fill."""
    model_type = config.get("model_type")
    params = set(inspect.signature(model_class(model_dir, config).forward).parameters)
    pre = load_preprocessors(model_dir)
    # Contrastive dual encoders (CLIP, CLAP) take text and an image or a sound in one call.
    other_input = (pre.image_processor is not None and "pixel_values" in params) or (
        pre.feature_extractor is not None and "input_features" in params
    )
    if pre.tokenizer is not None and "input_ids" in params and other_input:
        raise ModelConversionError(
            f"{model_dir}: model_type {model_type!r} takes text with images or sounds in one call; "
            "exporting such models needs an export spec of its own, and there is none "
            f"(specs: {', '.join(sorted(SPECS))})"
        )
    if pre.image_processor is not None:
        modality, produced = "vision", pre.image_processor(images=[sample_image(32, 32)], return_tensors="np")
    elif pre.feature_extractor is not None:
        rate = pre.feature_extractor.sampling_rate
        modality = "audio"
        produced = pre.feature_extractor([sample_audio(rate)], sampling_rate=rate, return_tensors="np")
    elif pre.tokenizer is not None:
        modality, produced = "text", pre.tokenizer([VARIED_TEXTS[0]], return_tensors="np")
    else:
        raise ModelConversionError(
            f"{model_dir}: no export spec for model_type {model_type!r} (specs: {', '.join(sorted(SPECS))}), "
            "and no tokenizer, image processor or feature extractor in the folder to derive one from"
        )
    inputs = [name for name in produced if name in params]
    if not inputs:
        raise ModelConversionError(
            f"{model_dir}: the {modality} preprocessor gives {sorted(produced)}, none of which "
            f"{config['architectures'][0]}.forward takes"
        )
    axes: dict[str, Mapping[int, str]] = {}
    for name in inputs:
        rank = len(produced[name].shape)
        if modality == "text":
            axes[name] = _TEXT
        elif modality == "audio" and rank == 2:  # raw waveforms vary in length; spectrograms are padded
            axes[name] = {0: "batch", 1: "audio_length"}
        else:
            axes[name] = _BATCH
    if config.get("is_encoder_decoder") and "decoder_input_ids" in params:
        if pre.tokenizer is None:
            raise ModelConversionError(
                f"{model_dir}: encoder-decoder model_type {model_type!r} needs a "
                "tokenizer for decoder_input_ids, and the folder has none"
            )
        inputs.append("decoder_input_ids")
        axes["decoder_input_ids"] = _DECODER
    kwargs = {"use_cache": False} if "use_cache" in params or config.get("use_cache") is not None else {}
    return ExportSpec(
        f"derived-{model_type}",
        modality,
        tuple(inputs),
        _axes(**axes),
        forward_kwargs=MappingProxyType(kwargs),
    )
