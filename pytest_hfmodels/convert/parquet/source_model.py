"""The model a conversion reads: its family (from config.json), its weights, parts and tokenizer."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

from pytest_hfmodels.convert.parquet.config import COMPONENTS
from pytest_hfmodels.errors import ModelConversionError, ModelSourceError
from pytest_hfmodels.model_folder import transformers_class
from pytest_hfmodels.samples import image_size, random_pixels, random_token_ids

#: model_type values of encoder-only models converted like BERT
BERT_MODEL_TYPES = frozenset(
    {
        "bert", "roberta", "distilbert", "albert", "electra", "xlm-roberta", "xlm-roberta-xl", "camembert",
        "deberta", "deberta-v2", "mpnet", "megatron-bert", "ernie", "modernbert", "nomic_bert", "rembert",
    }
)  # fmt: skip

#: state-dict prefixes of a component: a component keeps the keys starting with one of them
COMPONENT_PREFIXES: dict[tuple[str, str], tuple[str, ...]] = {
    ("clip", "vision"): ("vision_model.", "visual_projection."),
    ("clip", "text"): ("text_model.", "text_projection."),
    ("whisper", "encoder"): ("model.encoder.", "encoder."),
    # proj_out is the decoder's output head (tied to its token embeddings)
    ("whisper", "decoder"): ("model.decoder.", "decoder.", "proj_out."),
}

#: files whose presence says the source ships a tokenizer or processor
PROCESSOR_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "preprocessor_config.json",
    "processor_config.json",
)


@dataclass(frozen=True)
class SourceModel:
    """A loaded source model; the module itself is mutable (validation loads weights into it)."""

    name: str
    family: str
    config: Any
    model: torch.nn.Module

    @property
    def revision(self) -> str | None:
        # Set by transformers when the files came from the Hub or its cache; a local folder has none.
        revision = getattr(self.config, "_commit_hash", None)
        return revision if isinstance(revision, str) else None


def detect_family(config: Any) -> str:
    model_type = str(getattr(config, "model_type", "") or "")
    architectures = [str(a) for a in getattr(config, "architectures", None) or []]
    if model_type == "clip" or any(a.startswith("CLIP") for a in architectures):
        return "clip"
    if model_type == "whisper" or any(a.startswith("Whisper") for a in architectures):
        return "whisper"
    if model_type in BERT_MODEL_TYPES:
        return "bert"
    return "generic"


def load_source(model_name_or_path: str, model_type: str) -> SourceModel:
    """Load config and model from a local folder, or through transformers (HF cache or Hub)."""
    is_local = Path(model_name_or_path).is_dir()
    where = "local folder" if is_local else "Hugging Face cache or Hub"
    try:
        config = transformers.AutoConfig.from_pretrained(model_name_or_path)
        model_class = _model_class(config)
        model = model_class.from_pretrained(model_name_or_path, config=config, dtype="auto")
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        hint = "" if is_local else " (it is not a local folder, so it was looked up as a model id)"
        raise ModelConversionError(
            f"cannot load model {model_name_or_path!r} from the {where}{hint}: {exc}"
        ) from exc
    model.eval()
    family = detect_family(config) if model_type == "auto" else model_type
    return SourceModel(name=model_name_or_path, family=family, config=config, model=model)


def _model_class(config: Any) -> Any:
    # The class named in config.json keeps heads (lm_head, projections) that AutoModel would drop.
    for name in getattr(config, "architectures", None) or []:
        try:
            candidate = transformers_class(str(name))
        except ModelSourceError:
            continue
        if issubclass(candidate, transformers.PreTrainedModel):
            return candidate
    return transformers.AutoModel


def select_component(
    state_dict: Mapping[str, torch.Tensor], family: str, component: str
) -> dict[str, torch.Tensor]:
    if component not in COMPONENTS.get(family, ("all",)):
        choices = ", ".join(COMPONENTS.get(family, ("all",)))
        raise ModelConversionError(
            f"component {component!r} does not exist for type {family!r} (choices: {choices})"
        )
    if component == "all":
        return dict(state_dict)
    prefixes = COMPONENT_PREFIXES[(family, component)]
    selected = {name: tensor for name, tensor in state_dict.items() if name.startswith(prefixes)}
    if not selected:
        raise ModelConversionError(
            f"component {component!r} selected no tensors (no key starts with {', '.join(prefixes)})"
        )
    return selected


def sample_inputs(source: SourceModel) -> dict[str, torch.Tensor] | None:
    """A small deterministic input for the model's forward, built from its config; None if unknown."""
    config = source.config
    main_input = getattr(source.model, "main_input_name", "input_ids")
    inputs: dict[str, torch.Tensor] = {}
    if source.family == "clip":
        inputs.update(_text_inputs(config.text_config))
        inputs["pixel_values"] = _pixels(config.vision_config)
    elif main_input == "input_ids":
        inputs.update(_text_inputs(config.get_text_config()))
    elif main_input == "pixel_values":
        inputs["pixel_values"] = _pixels(config)
    elif main_input == "input_features" and hasattr(config, "num_mel_bins"):
        # Whisper's encoder wants exactly 2 * max_source_positions frames (two strided convs).
        frames = 2 * int(config.max_source_positions)
        features = random_pixels(1, int(config.num_mel_bins), frames)[0]  # (1, mel bins, frames)
        inputs["input_features"] = torch.from_numpy(features)
    else:
        return None
    if getattr(config, "is_encoder_decoder", False):
        vocab = int(config.get_text_config(decoder=True).vocab_size)
        inputs["decoder_input_ids"] = torch.from_numpy(random_token_ids(vocab, 1, 4, seed=1))
    return inputs


def _text_inputs(text_config: Any) -> dict[str, torch.Tensor]:
    length = min(8, int(getattr(text_config, "max_position_embeddings", 8) or 8))
    ids = torch.from_numpy(random_token_ids(int(text_config.vocab_size), 2, length))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _pixels(vision_config: Any) -> torch.Tensor:
    height, width = image_size(vision_config)
    channels = int(getattr(vision_config, "num_channels", 3))
    return torch.from_numpy(random_pixels(channels, height, width))


def run_forward(model: torch.nn.Module, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's floating-point outputs by path (e.g. `text_model_output.last_hidden_state`)."""
    extra = {"use_cache": False} if "use_cache" in inspect.signature(model.forward).parameters else {}
    with torch.inference_mode():
        output = model(**inputs, **extra)  # a key/value cache is no output worth comparing
    return dict(_flatten(output, ""))


def _flatten(value: Any, path: str) -> list[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        return [(path or "output", value.detach().clone())] if value.is_floating_point() else []
    if isinstance(value, Mapping):  # ModelOutput is an OrderedDict of its non-None fields
        return [item for key, sub in value.items() for item in _flatten(sub, f"{path}.{key}".lstrip("."))]
    if isinstance(value, (tuple, list)):
        return [item for i, sub in enumerate(value) for item in _flatten(sub, f"{path}[{i}]")]
    return []  # caches and other objects carry no outputs to compare


def save_tokenizer(source_dir_or_id: str, destination: Path) -> Path | None:
    """Save the source's processor or tokenizer to `destination`; None if the source has neither.

    A local folder with tokenizer files that fail to load is an error; a model id without them is not.
    """
    source = Path(source_dir_or_id)
    if source.is_dir() and not any((source / name).is_file() for name in PROCESSOR_FILES):
        return None
    failures: list[str] = []
    # AutoProcessor first: it returns the full processor (tokenizer + image/audio part) where one exists.
    for loader in (transformers.AutoProcessor, transformers.AutoTokenizer):
        try:
            processor = loader.from_pretrained(source_dir_or_id)
        except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
            failures.append(f"{loader.__name__}: {exc}")
            continue
        processor.save_pretrained(str(destination))
        return destination
    if source.is_dir():
        raise ModelConversionError(
            f"{source_dir_or_id}: has tokenizer files that no loader could read: {'; '.join(failures)}"
        )
    return None
