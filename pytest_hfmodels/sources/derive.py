"""A model no registry lists, placed from its own files: a Hub id or a local folder named by
`--hf-model` (or by a custom set in the original tools' format) becomes a registry entry.

What the model is comes from its config.json (`model_type`, `architectures`) and, for a Hub id, the
task the Hub lists it under (`pipeline_tag`); never from its name. When a registry family has the
same model_type, the entry takes that family's tolerances and modes (and its export spec follows
from the model_type); otherwise the derived defaults. A model that cannot be placed is a
SelectionError naming what is missing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pytest_hfmodels.errors import ModelSourceError, SelectionError
from pytest_hfmodels.model_folder import read_config
from pytest_hfmodels.registry.model import ModelEntry, Tolerances
from pytest_hfmodels.registry.select import Registry

#: class-name endings of transformers heads -> the pipeline task each head answers, first match wins
HEAD_TASKS: tuple[tuple[str, str], ...] = (
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForMaskedLM", "fill-mask"),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForImageClassification", "image-classification"),
    ("ForObjectDetection", "object-detection"),
    ("ForCTC", "automatic-speech-recognition"),
    ("ForAudioClassification", "audio-classification"),
    ("ForMaskGeneration", "mask-generation"),
    ("ForImageTextToText", "image-text-to-text"),
    ("Model", "feature-extraction"),
)
#: Hub pipeline tags that name a transformers pipeline task by another name
TAG_TASKS = {"sentence-similarity": "feature-extraction", "text2text-generation": "text2text-generation"}
_VISION_TASKS = frozenset({"image-classification", "object-detection", "mask-generation"})
_AUDIO_TASKS = frozenset({"automatic-speech-recognition", "audio-classification"})
_MULTIMODAL_TASKS = frozenset(
    {
        "image-text-to-text",
        "zero-shot-image-classification",
        "zero-shot-audio-classification",
        "zero-shot-video-classification",
    }
)
_KEY_CHARS = re.compile(r"[^a-z0-9._-]+")


def is_model_reference(name: str) -> bool:
    """A name that can only mean a Hub id or a folder, never a registry key: it has a slash."""
    return "/" in name or name.startswith(".") or Path(name).expanduser().is_dir()


def readable_key(model: str) -> str:
    """A test-id key from a Hub id or a folder: 'google-bert/bert-base-uncased' ->
    'google-bert--bert-base-uncased', './my-finetuned-bert' -> 'my-finetuned-bert'."""
    path = Path(model).expanduser()
    text = path.resolve().name if path.is_dir() else model.replace("/", "--")
    return _KEY_CHARS.sub("-", text.lower()).strip("-") or "model"


def derive_entry(
    model: str,
    registry: Registry,
    *,
    offline: bool,
    key: str | None = None,
    client: Any = None,
    sets: tuple[str, ...] = (),
    description: str = "",
    registry_file: str = "--hf-model",
) -> ModelEntry:
    """The entry of a Hub id or local folder, placed by its config.json and the Hub's pipeline_tag.

    `client`: the Hub gateway (`hub.client.HubClient`), made when None; a folder needs none.
    """
    folder = Path(model).expanduser()
    pipeline_tag = None
    if folder.is_dir():
        try:
            config = read_config(folder)
        except ModelSourceError as exc:
            raise SelectionError(f"--hf-model {model!r}: {exc}") from None
        source, model_id = "local", str(folder.resolve())
    else:
        if client is None:
            from pytest_hfmodels.hub.client import HubClient

            client = HubClient(offline=offline)
        try:
            metadata = client.model_metadata(model)
        except ValueError as exc:  # huggingface_hub's HFValidationError: not a repo id at all
            raise SelectionError(
                f"--hf-model {model!r}: neither a folder nor a Hub repo id ({exc})"
            ) from None
        if metadata.model_type is None and not metadata.architectures:
            raise SelectionError(
                f"--hf-model {model!r}: the repo has no config.json with a model_type or architectures "
                "(a transformers model is needed; or add it to a registry with its family)"
            )
        config = {"model_type": metadata.model_type, "architectures": list(metadata.architectures)}
        pipeline_tag = metadata.pipeline_tag
        source, model_id = "hub", model
    return _entry(
        model, model_id, source, config, pipeline_tag, registry, key, sets, description, registry_file
    )


def family_of_model_type(registry: Registry, model_type: str | None) -> str | None:
    """The registry family whose models have `model_type` (by their built config, else by name)."""
    if not model_type:
        return None
    for entry in registry.entries:
        spec = entry.build_spec
        if spec is not None and spec.model_type == model_type:
            return entry.family
    return model_type if model_type in registry.family_defaults else None


def _entry(
    model: str,
    model_id: str,
    source: str,
    config: dict[str, Any],
    pipeline_tag: str | None,
    registry: Registry,
    key: str | None,
    sets: tuple[str, ...],
    description: str,
    registry_file: str,
) -> ModelEntry:
    model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    architectures = [str(name) for name in config.get("architectures") or ()]
    family_name = family_of_model_type(registry, model_type)
    family = registry.family_defaults.get(family_name) if family_name else None
    architecture = architectures[0] if architectures else (family.architecture if family else None)
    task = TAG_TASKS.get(pipeline_tag or "", pipeline_tag) or _head_task(architecture)
    if task is None and family is not None:
        task = family.task
    if architecture is None or task is None:
        missing = "architectures in config.json" if architecture is None else "a task"
        raise SelectionError(
            f"--hf-model {model!r}: cannot place the model: no {missing} (model_type {model_type!r} "
            f"is {'in no registry family' if family is None else 'of family ' + family.family}; "
            "the Hub gives no pipeline_tag); add it to a registry with its family and task"
        )
    modality = family.modality if family is not None and task == family.task else _modality(task, config)
    return ModelEntry(
        key=key or readable_key(model),
        family=family.family if family else (model_type or "derived"),
        task=task,
        modality=modality,
        id=model_id,
        source=source,
        architecture=architecture,
        sets=sets,
        description=description or f"{model_type or 'unknown'} model placed from its config.json",
        tolerances=family.tolerances if family else Tolerances(),
        dependencies=(),
        registry_file=registry_file,
        modes=family.modes if family else None,
    )


def _head_task(architecture: str | None) -> str | None:
    if architecture is None:
        return None
    if architecture.endswith("ForConditionalGeneration"):
        return None  # seq2seq text, speech or image-text: only the Hub's task or a family can tell
    return next((task for ending, task in HEAD_TASKS if architecture.endswith(ending)), None)


def _modality(task: str, config: dict[str, Any]) -> str:
    if task in _VISION_TASKS:
        return "vision"
    if task in _AUDIO_TASKS:
        return "audio"
    if task in _MULTIMODAL_TASKS:
        return "multimodal"
    if task == "feature-extraction" and ("image_size" in config or "num_channels" in config):
        return "vision"
    return "text"
