"""Sample inputs: the one place texts, images, audio and videos for a model are made.

The runners (each mode's inputs), the ONNX export (export, validation and the exported modes'
inputs through `model_inputs`), the Parquet validation (`random_token_ids`, `random_pixels`) and
the tiny tokenizers (`TOKENIZER_CORPUS`) take their samples from here, so every path feeds a
model the same kind of data. Everything is deterministic (seeded), and numpy and PIL are imported
only when a sample is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from pytest_hfmodels.errors import ModelConversionError

SAMPLE_TEXT = "Paris is the capital of France."
SAMPLE_PROMPT = "Hello world, this is"
#: decoder_input_ids length of encoder-decoder models in every mode
DECODER_LENGTH = 4
SAMPLE_TEXT2TEXT = "Translate English to German: the house is wonderful."
#: candidate labels of zero-shot image classification, and the texts contrastive models pair with images
SAMPLE_LABELS = ("a photo of a cat", "a photo of a dog", "a photo of a car")
#: the question image-text-to-text models are asked, after the processor's image token
SAMPLE_IMAGE_QUESTION = "Describe the picture."
#: the same for sounds (zero-shot audio classification, contrastive audio-text models)
SAMPLE_SOUND_LABELS = ("a dog barking", "a car horn", "rain")
#: the same for videos (contrastive video-text models: zero-shot video classification)
SAMPLE_VIDEO_LABELS = ("playing sports", "eating spaghetti", "going shopping")
#: frames per video where the model's config does not say
DEFAULT_VIDEO_FRAMES = 8
#: point prompts per image a promptable segmentation model (SAM) is given in every mode, each asking
#: for one object's masks: more than one, so a prompt axis broadcast from 1 cannot pass the checks
SAMPLE_POINT_PROMPTS = 2
# Rows differ in content and length, so batched validation exercises padding and attention masks.
VARIED_TEXTS = (
    "Paris is the capital of France. The quick brown fox jumps over the lazy dog. "
    "Transformers provide thousands of pretrained models.",
    "A man is eating food.",
    "The weather today is sunny with a light breeze.",
)
#: prompts of generation cases, one per batch row in turn. Their lengths differ, so a batch of them is
#: padded: on the left for decoder-only models, as `generate` expects, so every row's last token is real.
GENERATION_PROMPTS = (
    "Hello world, this is",
    "The quick brown fox jumps over the lazy dog. Paris is",
    "A man is eating",
)
#: the target text whose tokens follow the decoder start token in exported encoder-decoders
DECODER_TEXT = "the house is wonderful and the weather is sunny today"
#: what tiny tokenizers are trained on: every sample text above tokenises into learned pieces
TOKENIZER_CORPUS = (
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A woman is playing the violin.",
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France.",
    "Hello world, this is a tiny model built for tests.",
    "Translate English to German: the house is wonderful.",
    "Transformers provide thousands of pretrained models.",
    "The weather today is sunny with a light breeze.",
    "Numbers like 1, 2, 3 and 42 appear in text too.",
    "She sells sea shells by the sea shore.",
    "Machine learning models run on CPUs, GPUs and NPUs.",
)
#: modalities of contrastive dual encoders (CLIP: text-image, CLAP: text-audio, X-CLIP: text-video):
#: their texts are a batch of their own, each scored against every image, sound or video. The other
#: modality with text and images is image-prompt (LLaVA, LLaVA-NeXT): one image per row, its prompt
#: holding the image's tokens.
CONTRASTIVE = ("text-image", "text-audio", "text-video")
#: images with point prompts (SAM): per image, `point_prompts` prompts of `points_per_prompt` points
POINT_PROMPTED = "image-points"
#: modalities whose inputs only the model's processor makes: it expands the image token (image-prompt)
#: or scales the points to the resized image (image-points)
NEEDS_PROCESSOR = ("image-prompt", POINT_PROMPTED)


def ensure_pad_token(tokenizer: Any) -> None:
    """Causal LMs ship without a pad token; batching needs one, and eos is the usual choice."""
    if tokenizer is not None and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def sample_image(height: int, width: int, seed: int = 0) -> Any:
    """A deterministic RGB image (PIL) of the given size."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def sample_video(frames: int, height: int, width: int, seed: int = 0) -> list[Any]:
    """A deterministic video: `frames` RGB images (PIL), one random picture panning right a few
    pixels a frame, so the frames differ as a video's do, yet belong together."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    step = max(1, width // 16)
    return [Image.fromarray(np.roll(pixels, i * step, axis=1)) for i in range(frames)]


def video_frames(config: Any) -> int:
    """Frames per video a model takes (X-CLIP keeps the number in its vision tower's config): the
    model's temporal position embeddings have exactly that many positions."""
    frames = getattr(config, "num_frames", None) or getattr(
        getattr(config, "vision_config", None), "num_frames", None
    )
    return int(frames or DEFAULT_VIDEO_FRAMES)


def sample_audio(sampling_rate: int, seconds: float = 1.0) -> Any:
    """A 440 Hz tone with a little noise, float32 in [-1, 1]."""
    import numpy as np

    t = np.arange(int(sampling_rate * seconds), dtype=np.float32) / sampling_rate
    noise = np.random.default_rng(0).normal(0, 0.01, t.shape).astype(np.float32)
    return (0.5 * np.sin(2 * np.pi * 440.0 * t) + noise).astype(np.float32)


def image_size(config: Any) -> tuple[int, int]:
    # Dual-encoder models (CLIP) keep the image size in their vision tower's config.
    size = getattr(config, "image_size", None) or getattr(
        getattr(config, "vision_config", None), "image_size", None
    )
    size = size or 224
    if isinstance(size, (list, tuple)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


#: InputShape fields added after specs had been made; `as_json` leaves them out while unset
_ADDED_LATER = ("texts", "point_prompts", "points_per_prompt")


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
    #: promptable segmentation (SAM): point prompts per image, each asking for one object's masks
    point_prompts: int | None = None
    points_per_prompt: int | None = None  #: points of each prompt (SAM)

    def as_json(self) -> dict[str, Any]:
        """asdict without the fields added later while they are unset: shapes of the specs made
        before them keep their JSON, and so their conversions' cache keys."""
        return {k: v for k, v in asdict(self).items() if k not in _ADDED_LATER or v is not None}


@dataclass(frozen=True)
class Preprocessors:
    """The model folder's own tokenizer, image processor and feature extractor (those it has)."""

    tokenizer: Any = None
    image_processor: Any = None
    feature_extractor: Any = None
    #: the AutoProcessor of image-prompt models (it expands the image token) and of point-prompted
    #: ones (it scales the points to the resized image)
    processor: Any = None


def sample_images(config: Any, batch: int) -> list[Any]:
    """`batch` different images of the size the model's config names."""
    height, width = image_size(config)
    return [sample_image(height, width, seed=i) for i in range(batch)]


def sample_videos(config: Any, batch: int) -> list[list[Any]]:
    """`batch` different videos of the frame count and size the model's config names."""
    height, width = image_size(config)
    return [sample_video(video_frames(config), height, width, seed=i) for i in range(batch)]


def sample_points(config: Any, batch: int, prompts: int, points: int) -> list[Any]:
    """Seeded point prompts in pixel coordinates of the images `sample_images` makes: per image,
    `prompts` prompts of `points` (x, y) points each, as nested lists (what SAM's processor takes)."""
    import numpy as np

    height, width = image_size(config)
    xy = np.random.default_rng(0).integers(0, (width, height), size=(batch, prompts, points, 2))
    listed: list[Any] = xy.tolist()
    return listed


def prompted_images(processor: Any, config: Any, shape: InputShape, return_tensors: str) -> dict[str, Any]:
    """pixel_values and input_points (batch, point_prompts, points_per_prompt, 2) of `shape.batch`
    images with their point prompts, through the model's processor, which scales the points to the
    resized image. The image sizes it also returns are for post-processing, not the model."""
    points = sample_points(config, shape.batch, shape.point_prompts or 1, shape.points_per_prompt or 1)
    made = processor(
        images=sample_images(config, shape.batch), input_points=points, return_tensors=return_tensors
    )
    return {"pixel_values": made["pixel_values"], "input_points": made["input_points"]}


def text_of_tokens(tokens: int) -> str:
    """A text at least `tokens` tokens long for any tokenizer: truncated to exactly that many, it
    gives an input of that length made of real words."""
    return " ".join([SAMPLE_TEXT] * tokens)


def random_token_ids(vocab_size: int, batch: int, length: int, seed: int = 0) -> Any:
    """Seeded token ids (int64) for models checked without a tokenizer (the Parquet validation)."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, vocab_size, size=(batch, length), dtype=np.int64)


def random_pixels(channels: int, height: int, width: int, batch: int = 1, seed: int = 0) -> Any:
    """Seeded normalised pixel values (float32, batch x channels x height x width)."""
    import numpy as np

    shape = (batch, channels, height, width)
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def sample_shape(modality: str, batch_size: int, input_size: int | None) -> InputShape:
    """The inputs' shape and texts: those the PyTorch modes give the same model, so modes are timed on
    equal inputs. Contrastive models score `batch_size` images, sounds or videos against the sample labels;
    image-prompt models get one image and the sample question per row; point-prompted models one image
    and SAMPLE_POINT_PROMPTS prompts of one point per row."""
    shape = InputShape(batch_size, input_size, DECODER_LENGTH, SAMPLE_TEXT)
    if modality == "text-image":
        return replace(shape, text=None, texts=SAMPLE_LABELS)
    if modality == "text-audio":
        return replace(shape, text=None, texts=SAMPLE_SOUND_LABELS)
    if modality == "text-video":
        return replace(shape, text=None, texts=SAMPLE_VIDEO_LABELS)
    if modality == "image-prompt":
        return replace(shape, text=SAMPLE_IMAGE_QUESTION)
    if modality == POINT_PROMPTED:
        return replace(shape, point_prompts=SAMPLE_POINT_PROMPTS, points_per_prompt=1)
    return shape


def model_inputs(
    modality: str, names: Sequence[str], pre: Preprocessors, config: Any, shape: InputShape, label: str
) -> dict[str, Any]:
    """Sample inputs `names` (numpy arrays, in that order) for a model of `modality`, made by its own
    preprocessors; `label` names what asks (an export spec) in errors."""
    import numpy as np

    made: dict[str, Any] = {}
    if modality == "text" or modality in CONTRASTIVE:
        tokenizer = _need(pre.tokenizer, "tokenizer", label, modality)
        made.update(_tokenized(tokenizer, _texts(modality, shape), shape.length))
    if modality in ("vision", "text-image"):
        processor = _need(pre.image_processor, "image processor", label, modality)
        made.update(processor(images=sample_images(config, shape.batch), return_tensors="np"))
    elif modality == "text-video":  # pixel_values (videos, frames, channels, height, width)
        processor = _need(pre.image_processor, "image processor", label, modality)
        made.update(processor(images=sample_videos(config, shape.batch), return_tensors="np"))
    elif modality in ("audio", "text-audio"):
        extractor = _need(pre.feature_extractor, "feature extractor", label, modality)
        rate = extractor.sampling_rate
        # Equal clips within a batch (some extractors cannot pad), longer for larger batches so a
        # raw-waveform model's length axis differs between export and validation. CLAP pads every
        # clip to one length and cuts longer ones at a random offset: its clips are 1 s, as the
        # PyTorch modes give.
        seconds = 1.0 if modality == "text-audio" else 0.5 + 0.5 * shape.batch
        clips = [sample_audio(rate, seconds=seconds)] * shape.batch
        made.update(extractor(clips, sampling_rate=rate, return_tensors="np"))
    elif modality == "image-prompt":
        made.update(_image_prompts(pre, config, shape, label))
    elif modality == POINT_PROMPTED:
        processor = _need(pre.processor, "processor", label, modality)
        made.update(prompted_images(processor, config, shape, "np"))
    if "decoder_input_ids" in names:
        tokenizer = _need(pre.tokenizer, "tokenizer", label, modality)
        made["decoder_input_ids"] = _decoder_ids(tokenizer, config, shape)
    if "decoder_attention_mask" in names:
        made["decoder_attention_mask"] = np.ones_like(made["decoder_input_ids"])
    if "token_type_ids" in names and "token_type_ids" not in made:  # BERT's default segment
        made["token_type_ids"] = np.zeros_like(made["input_ids"])
    missing = [name for name in names if name not in made]
    if missing:
        raise ModelConversionError(f"{label}: the preprocessors made {sorted(made)}, not {missing}")
    return {name: _int64_or_float32(made[name]) for name in names}


def _texts(modality: str, shape: InputShape) -> list[str]:
    """One text per row; a contrastive model's texts are a batch of their own (see InputShape.texts)."""
    if modality in CONTRASTIVE:
        if shape.texts is not None:
            return list(shape.texts)
        count = shape.batch + 1
    else:
        count = shape.batch
    return [shape.text or VARIED_TEXTS[i % len(VARIED_TEXTS)] for i in range(count)]


def _padding(length: int | None) -> dict[str, Any]:
    """Tokenizer arguments: pad to the longest row, or to exactly `length` tokens (truncated where longer)."""
    if length is None:
        return {"padding": True}
    return {"padding": "max_length", "truncation": True, "max_length": length}


def _tokenized(tokenizer: Any, texts: list[str], length: int | None) -> dict[str, Any]:
    return dict(tokenizer(texts, return_tensors="np", **_padding(length)))


def _image_prompts(pre: Preprocessors, config: Any, shape: InputShape, label: str) -> dict[str, Any]:
    """One image per row, and a prompt of the image's tokens followed by a question.

    The model's processor writes the prompt where the folder has one (it expands the image token to
    image_seq_length tokens); else the tokenizer gets the expanded prompt and the image processor
    the images, which is what the processor does. Anyres models (LLaVA-NeXT) need the processor: their
    image tokens depend on the image size.
    """
    images = sample_images(config, shape.batch)
    if getattr(config, "image_grid_pinpoints", None):
        processor = _need(pre.processor, "processor", label, "image-prompt")
        ids = processor(images=images[:1], text=[processor.image_token], return_tensors="np")["input_ids"]
        image_tokens = int((ids == int(config.image_token_id)).sum())
        height, width = images[0].height, images[0].width
        source = f"the processor's count for a {height}x{width} image"
    else:
        image_tokens = int(getattr(config, "image_seq_length", 0) or 0)
        source = "config.json image_seq_length"
    if not image_tokens:
        raise ModelConversionError(f"{label}: config.json has no image_seq_length")
    if shape.length is not None and shape.length <= image_tokens:
        # Truncation would cut image tokens, and the model then has more image features than places.
        raise ModelConversionError(
            f"{label}: a text length of {shape.length} cannot hold an image's "
            f"{image_tokens} tokens ({source})"
        )
    questions = [shape.text or VARIED_TEXTS[i % len(VARIED_TEXTS)] for i in range(shape.batch)]
    pad = _padding(shape.length)
    if pre.processor is not None:
        prompts = [f"{pre.processor.image_token} {question}" for question in questions]
        return dict(pre.processor(images=images, text=prompts, return_tensors="np", **pad))
    tokenizer = _need(pre.tokenizer, "tokenizer", label, "image-prompt")
    image_processor = _need(pre.image_processor, "image processor", label, "image-prompt")
    token = tokenizer.convert_ids_to_tokens(int(config.image_token_id))
    made = dict(tokenizer([f"{token * image_tokens} {q}" for q in questions], return_tensors="np", **pad))
    made.update(image_processor(images=images, return_tensors="np"))
    return made


def _decoder_ids(tokenizer: Any, config: Any, shape: InputShape) -> Any:
    """The decoder start token followed by real tokens of a target text, decoder_length long."""
    import numpy as np

    length = shape.decoder_length or 4
    start = getattr(config, "decoder_start_token_id", None)
    if start is None:
        raise ModelConversionError("config.json has no decoder_start_token_id for decoder_input_ids")
    ids = [i for i in tokenizer(DECODER_TEXT, add_special_tokens=False)["input_ids"] if i != start]
    row = [start] + [ids[i % len(ids)] for i in range(length - 1)]
    return np.asarray([row] * shape.batch, dtype=np.int64)


def _int64_or_float32(array: Any) -> Any:
    import numpy as np

    array = np.asarray(array)
    return array.astype(np.int64 if array.dtype.kind in "iub" else np.float32)


def _need(component: Any, what: str, label: str, modality: str) -> Any:
    if component is None:
        raise ModelConversionError(f"{label} ({modality}) needs a {what}, and the model folder has none")
    return component


def generation_prompts(
    tokenizer: Any, batch: int, input_size: int | None, padding_side: str, return_tensors: str = "np"
) -> dict[str, Any]:
    """input_ids and attention_mask of `batch` generation prompts, by the model's own tokenizer: the
    GENERATION_PROMPTS in turn padded to the longest (on `padding_side`), or with `input_size`, one text
    of exactly that many tokens in every row."""
    if input_size is None:
        texts = [GENERATION_PROMPTS[i % len(GENERATION_PROMPTS)] for i in range(batch)]
    else:
        texts = [text_of_tokens(input_size)] * batch
    made = tokenizer(texts, return_tensors=return_tensors, padding_side=padding_side, **_padding(input_size))
    return {"input_ids": made["input_ids"], "attention_mask": made["attention_mask"]}
