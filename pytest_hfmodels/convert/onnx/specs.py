"""Export specs: what an ONNX export of a family takes, returns and may vary, chosen from config.json.

A spec is data: input names in graph order, the output names to keep, the dynamic axes of each
input, the preferred exporter and the shapes used to export and to validate. A family without a
spec gets one derived from its model class's forward signature and what its own tokenizer or
processor produces. Sample inputs are always made by the model's own preprocessor.

Models that take text with images, sounds or videos in one call have specs of their own: contrastive
dual encoders (CLIP, CLAP, X-CLIP) score every text against every image, sound or video, so their texts
are a batch of their own; vision-language models (LLaVA, LLaVA-NeXT) take one prompt per image, holding
that image's tokens.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_hfmodels.errors import ModelConversionError
from pytest_hfmodels.samples import (
    ensure_pad_token,
    image_size,
    sample_audio,
    sample_image,
    sample_video,
    video_frames,
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
#: modalities of contrastive dual encoders (CLIP: text-image, CLAP: text-audio, X-CLIP: text-video):
#: their texts are a batch of their own, each scored against every image, sound or video. The other
#: modality with text and images is image-prompt (LLaVA, LLaVA-NeXT): one image per row, its prompt
#: holding the image's tokens.
CONTRASTIVE = ("text-image", "text-audio", "text-video")

# Rows differ in content and length, so batched validation exercises padding and attention masks.
_TEXTS = (
    "Paris is the capital of France. The quick brown fox jumps over the lazy dog. "
    "Transformers provide thousands of pretrained models.",
    "A man is eating food.",
    "The weather today is sunny with a light breeze.",
)
_DECODER_TEXT = "the house is wonderful and the weather is sunny today"


@dataclass(frozen=True)
class InputShape:
    """Sizes of the variable axes of one set of sample inputs."""

    batch: int
    length: int | None = None  #: text sequence length; None: the tokenizer's own (longest row)
    decoder_length: int | None = None  #: decoder_input_ids length of encoder-decoder models
    #: one text for every row (the runners' shared sample, so modes time the same input);
    #: None: distinct sample texts, as validation wants
    text: str | None = None
    #: contrastive models: the texts every image or sound is scored against (the runners' labels);
    #: None: `batch + 1` texts, so the two batch axes never share a size and each keeps its own name
    texts: tuple[str, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        """asdict without `texts` while it is unset: shapes of the specs made before it keep their JSON."""
        return {k: v for k, v in asdict(self).items() if k != "texts" or v is not None}


@dataclass(frozen=True)
class ExportSpec:
    """How to export one family to ONNX."""

    name: str  #: the family, or "derived-<model_type>"
    #: text | vision | audio | text-image | text-audio | text-video | image-prompt: what makes the inputs
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
    #: a module of `onnx_export.WRAPPERS` that runs the model where its own forward cannot be traced
    #: with dynamic axes; None: the model's forward
    wrapper: str | None = None

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
        # forward takes it; the wrapper refuses other sizes at export (see onnx_export._llava_next_logits).
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
    }
)


@dataclass(frozen=True)
class Preprocessors:
    """The model folder's own tokenizer, image processor and feature extractor (those it has)."""

    tokenizer: Any = None
    image_processor: Any = None
    feature_extractor: Any = None
    processor: Any = None  #: the AutoProcessor of image-prompt models (it expands the image token)


def read_config(model_dir: Path) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelConversionError(f"{model_dir}: no config.json: not a transformers model folder") from exc
    except (OSError, ValueError) as exc:
        raise ModelConversionError(f"{model_dir / 'config.json'}: unreadable: {exc}") from exc
    return config


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
    import transformers

    names = config.get("architectures") or []
    if not names:
        raise ModelConversionError(f"{model_dir / 'config.json'}: no 'architectures' naming a model class")
    cls = getattr(transformers, str(names[0]), None)
    if cls is None:
        raise ModelConversionError(
            f"{model_dir / 'config.json'}: architecture {names[0]!r} is not in "
            f"transformers {transformers.__version__}"
        )
    return cls


def load_preprocessors(model_dir: Path, with_processor: bool = False) -> Preprocessors:
    """Load the preprocessors whose files the folder holds; the files decide, not the model's name.

    `with_processor`: also the AutoProcessor, where the folder has a processor_config.json.
    """
    import transformers

    names = {p.name for p in model_dir.iterdir()}
    tokenizer = image_processor = feature_extractor = None
    if names & {"tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model"}:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        ensure_pad_token(tokenizer)
    if "preprocessor_config.json" in names:
        data = json.loads((model_dir / "preprocessor_config.json").read_text(encoding="utf-8"))
        kind = str(data.get("image_processor_type") or data.get("feature_extractor_type") or "")
        if "image_processor_type" in data or "ImageProcessor" in kind:
            image_processor = transformers.AutoImageProcessor.from_pretrained(model_dir)
        else:
            feature_extractor = transformers.AutoFeatureExtractor.from_pretrained(model_dir)
    processor = None
    if with_processor and "processor_config.json" in names:
        processor = transformers.AutoProcessor.from_pretrained(model_dir)
        ensure_pad_token(processor.tokenizer)
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
        modality, produced = "text", pre.tokenizer([_TEXTS[0]], return_tensors="np")
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


def make_inputs(spec: ExportSpec, pre: Preprocessors, config: Any, shape: InputShape) -> dict[str, Any]:
    """Sample inputs (numpy arrays, in spec order) made by the model's own preprocessors."""
    import numpy as np

    made: dict[str, Any] = {}
    if spec.modality == "text" or spec.modality in CONTRASTIVE:
        made.update(_tokenized(_need(pre.tokenizer, "tokenizer", spec), _texts(spec, shape), shape.length))
    if spec.modality in ("vision", "text-image"):
        processor = _need(pre.image_processor, "image processor", spec)
        made.update(processor(images=_images(config, shape.batch), return_tensors="np"))
    elif spec.modality == "text-video":  # pixel_values (videos, frames, channels, height, width)
        processor = _need(pre.image_processor, "image processor", spec)
        height, width = image_size(config)
        videos = [sample_video(video_frames(config), height, width, seed=i) for i in range(shape.batch)]
        made.update(processor(images=videos, return_tensors="np"))
    elif spec.modality in ("audio", "text-audio"):
        extractor = _need(pre.feature_extractor, "feature extractor", spec)
        rate = extractor.sampling_rate
        # Equal clips within a batch (some extractors cannot pad), longer for larger batches so a
        # raw-waveform model's length axis differs between export and validation. CLAP pads every
        # clip to one length and cuts longer ones at a random offset: its clips are 1 s, as the
        # PyTorch modes give.
        seconds = 1.0 if spec.modality == "text-audio" else 0.5 + 0.5 * shape.batch
        clips = [sample_audio(rate, seconds=seconds)] * shape.batch
        made.update(extractor(clips, sampling_rate=rate, return_tensors="np"))
    elif spec.modality == "image-prompt":
        made.update(_image_prompts(spec, pre, config, shape))
    if "decoder_input_ids" in spec.inputs:
        made["decoder_input_ids"] = _decoder_ids(_need(pre.tokenizer, "tokenizer", spec), config, shape)
    if "decoder_attention_mask" in spec.inputs:
        made["decoder_attention_mask"] = np.ones_like(made["decoder_input_ids"])
    if "token_type_ids" in spec.inputs and "token_type_ids" not in made:  # BERT's default segment
        made["token_type_ids"] = np.zeros_like(made["input_ids"])
    missing = [name for name in spec.inputs if name not in made]
    if missing:
        raise ModelConversionError(
            f"export spec {spec.name!r}: the preprocessors made {sorted(made)}, not {missing}"
        )
    return {name: _int64_or_float32(made[name]) for name in spec.inputs}


def _texts(spec: ExportSpec, shape: InputShape) -> list[str]:
    """One text per row; a contrastive model's texts are a batch of their own (see InputShape.texts)."""
    if spec.modality in CONTRASTIVE:
        if shape.texts is not None:
            return list(shape.texts)
        count = shape.batch + 1
    else:
        count = shape.batch
    return [shape.text or _TEXTS[i % len(_TEXTS)] for i in range(count)]


def _padding(length: int | None) -> dict[str, Any]:
    """Tokenizer arguments: pad to the longest row, or to exactly `length` tokens (truncated where longer)."""
    if length is None:
        return {"padding": True}
    return {"padding": "max_length", "truncation": True, "max_length": length}


def _tokenized(tokenizer: Any, texts: list[str], length: int | None) -> dict[str, Any]:
    return dict(tokenizer(texts, return_tensors="np", **_padding(length)))


def _images(config: Any, batch: int) -> list[Any]:
    height, width = image_size(config)
    return [sample_image(height, width, seed=i) for i in range(batch)]


def _image_prompts(spec: ExportSpec, pre: Preprocessors, config: Any, shape: InputShape) -> dict[str, Any]:
    """One image per row, and a prompt of the image's tokens followed by a question.

    The model's processor writes the prompt where the folder has one (it expands the image token to
    image_seq_length tokens); else the tokenizer gets the expanded prompt and the image processor
    the images, which is what the processor does. Anyres models (LLaVA-NeXT) need the processor: their
    image tokens depend on the image size.
    """
    images = _images(config, shape.batch)
    if getattr(config, "image_grid_pinpoints", None):
        processor = _need(pre.processor, "processor", spec)
        ids = processor(images=images[:1], text=[processor.image_token], return_tensors="np")["input_ids"]
        image_tokens = int((ids == int(config.image_token_id)).sum())
        height, width = images[0].height, images[0].width
        source = f"the processor's count for a {height}x{width} image"
    else:
        image_tokens = int(getattr(config, "image_seq_length", 0) or 0)
        source = "config.json image_seq_length"
    if not image_tokens:
        raise ModelConversionError(f"export spec {spec.name!r}: config.json has no image_seq_length")
    if shape.length is not None and shape.length <= image_tokens:
        # Truncation would cut image tokens, and the model then has more image features than places.
        raise ModelConversionError(
            f"export spec {spec.name!r}: a text length of {shape.length} cannot hold an image's "
            f"{image_tokens} tokens ({source})"
        )
    questions = [shape.text or _TEXTS[i % len(_TEXTS)] for i in range(shape.batch)]
    padding = _padding(shape.length)
    if pre.processor is not None:
        prompts = [f"{pre.processor.image_token} {question}" for question in questions]
        return dict(pre.processor(images=images, text=prompts, return_tensors="np", **padding))
    tokenizer = _need(pre.tokenizer, "tokenizer", spec)
    image_processor = _need(pre.image_processor, "image processor", spec)
    token = tokenizer.convert_ids_to_tokens(int(config.image_token_id))
    made = dict(tokenizer([f"{token * image_tokens} {q}" for q in questions], return_tensors="np", **padding))
    made.update(image_processor(images=images, return_tensors="np"))
    return made


def _decoder_ids(tokenizer: Any, config: Any, shape: InputShape) -> Any:
    """The decoder start token followed by real tokens of a target text, decoder_length long."""
    import numpy as np

    length = shape.decoder_length or 4
    start = getattr(config, "decoder_start_token_id", None)
    if start is None:
        raise ModelConversionError("config.json has no decoder_start_token_id for decoder_input_ids")
    ids = [i for i in tokenizer(_DECODER_TEXT, add_special_tokens=False)["input_ids"] if i != start]
    row = [start] + [ids[i % len(ids)] for i in range(length - 1)]
    return np.asarray([row] * shape.batch, dtype=np.int64)


def _int64_or_float32(array: Any) -> Any:
    import numpy as np

    array = np.asarray(array)
    return array.astype(np.int64 if array.dtype.kind in "iub" else np.float32)


def _need(component: Any, what: str, spec: ExportSpec) -> Any:
    if component is None:
        raise ModelConversionError(
            f"export spec {spec.name!r} ({spec.modality}) needs a {what}, and the model folder has none"
        )
    return component
