"""A transformers model folder as the rest of the code sees it: its config.json and its classes.

The one reader of `config.json` (a model type comes from it, never from a name) and the one lookup
of a transformers class by name (model classes from `architectures`, tokenizer and processor
classes from a registry's `tiny` section). transformers is imported only by the lookup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_hfmodels.errors import HFModelsError, ModelSourceError

CONFIG_FILE = "config.json"
_JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def read_config(model_dir: Path, error: type[HFModelsError] = ModelSourceError) -> dict[str, Any]:
    """The folder's config.json as a dict; absent, unreadable or not a JSON object raises `error`,
    naming the file (callers pick the error their users expect: a conversion's or a source's)."""
    path = model_dir / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{model_dir}: no {CONFIG_FILE}: not a transformers model folder") from exc
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte offset {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:  # json's parser recurses once per nesting level
        raise error(f"{path}: invalid JSON: nested too deeply") from exc
    if not isinstance(config, dict):
        raise error(f"{path}: not a JSON object but a JSON {_JSON_TYPES.get(type(config), 'value')}")
    return config


def transformers_class(name: str, error: type[HFModelsError] = ModelSourceError, where: str = "") -> Any:
    """transformers' class `name`; absent, `error` names it, the transformers version and `where`."""
    import transformers

    cls = getattr(transformers, str(name), None)
    if not isinstance(cls, type):
        prefix = f"{where}: " if where else ""
        raise error(f"{prefix}{name!r} is not a class of transformers {transformers.__version__}")
    return cls


def architecture_class(model_dir: Path, config: dict[str, Any], error: type[HFModelsError]) -> Any:
    """The class config.json's `architectures` names (heads included, which AutoModel would drop)."""
    names = config.get("architectures") or []
    if not names:
        raise error(f"{model_dir / CONFIG_FILE}: no 'architectures' naming a model class")
    return transformers_class(str(names[0]), error, str(model_dir / CONFIG_FILE))
