"""A model named by a local folder or a Hub repo id, converted to ONNX (the verifier, `hfmodels convert`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.convert.onnx.cached import OnnxExport, export_onnx
from pytest_hfmodels.convert.onnx.specs import SPECS, read_config
from pytest_hfmodels.errors import ModelConversionError
from pytest_hfmodels.registry.model import Tolerances

#: files a conversion needs from a Hub repo: config, tokenizer/processor files, safetensors weights
_HUB_PATTERNS = ("*.json", "*.txt", "*.model", "*.safetensors")
_HUB_LEGACY_WEIGHTS = ("pytorch_model*.bin",)
_CONFIG_KEYS = frozenset({"opset", "exporter", "atol", "rtol", "cache_dir", "revision"})


@dataclass(frozen=True)
class ConversionOptions:
    """What a verifier's `conversion_config` may set."""

    opset: int | None = None
    exporter: str | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    cache_dir: Path | None = None
    revision: str | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> ConversionOptions:
        config = dict(config or {})
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise ModelConversionError(
                f"conversion_config: unknown keys {sorted(unknown)} "
                f"(known: {', '.join(sorted(_CONFIG_KEYS))})"
            )
        default = Tolerances()
        return cls(
            opset=int(config["opset"]) if config.get("opset") is not None else None,
            exporter=config.get("exporter"),
            tolerances=Tolerances(
                float(config.get("atol", default.atol)), float(config.get("rtol", default.rtol))
            ),
            cache_dir=Path(config["cache_dir"]).expanduser() if config.get("cache_dir") else None,
            revision=config.get("revision"),
        )


def convert_for_verifier(
    model_id: str,
    file_path: str,
    model_type: str | None = None,
    conversion_config: Mapping[str, Any] | None = None,
    verifier: Any = None,
) -> OnnxExport:
    """Convert `model_id` (a local folder or a Hub repo id) to ONNX, or find its conversion in the
    cache; the export says which (`converted_now`) and where the file is."""
    if not file_path.endswith(".onnx"):
        raise ModelConversionError(
            f"repo {model_id!r}: cannot produce {file_path!r}: this converter makes .onnx files"
        )
    options = ConversionOptions.from_mapping(conversion_config)
    client = getattr(verifier, "client", None)
    revision = options.revision or getattr(verifier, "revision", None)
    model_dir = model_folder(model_id, client, revision)
    config = read_config(model_dir)
    found = config.get("model_type")
    spec = None
    if model_type and found and model_type != found:
        raise ModelConversionError(
            f"repo {model_id!r}: model_type {model_type!r} was asked for, but its config.json says {found!r}"
        )
    if model_type and not found:  # the caller knows what the config does not say
        if model_type not in SPECS:
            raise ModelConversionError(
                f"repo {model_id!r}: config.json has no model_type and {model_type!r} "
                f"has no export spec (specs: {', '.join(sorted(SPECS))})"
            )
        spec = SPECS[model_type]
    export = export_onnx(
        model_dir,
        options.cache_dir or default_cache_root(),
        spec,
        options.opset,
        options.exporter,
        tolerances=options.tolerances,
        model_id=model_id,
    )
    return export


def model_folder(model: str, client: Any = None, revision: str | None = None) -> Path:
    """A local folder as is; anything else is a Hub repo id, fetched (or found offline) by the Hub client."""
    local = Path(model).expanduser()
    if local.is_dir():
        return local
    if client is None:
        from pytest_hfmodels.hub.client import HubClient

        client = HubClient()
    folder = Path(client.snapshot(model, revision=revision, allow_patterns=list(_HUB_PATTERNS)))
    if not any(folder.glob("*.safetensors")):  # older repos ship only PyTorch pickles
        folder = Path(client.snapshot(model, revision=revision, allow_patterns=list(_HUB_LEGACY_WEIGHTS)))
    return folder
