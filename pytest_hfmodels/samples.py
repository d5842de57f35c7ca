"""Sample inputs per modality and the torch device string of a detected device."""

from __future__ import annotations

from typing import Any

from pytest_hfmodels.cases.hardware import Device

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


def torch_device(device: Device) -> str:
    if device.kind in ("cuda", "rocm"):  # ROCm builds of torch expose HIP devices as "cuda"
        return f"cuda:{device.index}"
    if device.kind == "mps":
        return "mps"
    return "cpu"


def ensure_pad_token(tokenizer: Any) -> None:
    """Causal LMs ship without a pad token; batching needs one, and eos is the usual choice."""
    if tokenizer is not None and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def precision_name(dtype: Any) -> str:
    """torch.float32 -> fp32, the names result rows use for every runtime."""
    name = str(dtype).removeprefix("torch.")
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}.get(name, name)


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


def image_size(config: Any, processor: Any = None) -> tuple[int, int]:
    # Dual-encoder models (CLIP) keep the image size in their vision tower's config.
    size = getattr(config, "image_size", None) or getattr(
        getattr(config, "vision_config", None), "image_size", None
    )
    size = size or 224
    if isinstance(size, (list, tuple)):
        return int(size[0]), int(size[1])
    return int(size), int(size)
