"""The two callers of the ONNX converter outside the plugin: `hfmodels convert --to onnx` and the verifier."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cache import default_cache_root
from ..errors import HFModelsError, ModelConversionError
from ..registry import Tolerances
from .onnx import RECORD_FILE, OnnxExport, export_onnx
from .specs import SPECS, read_config

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
) -> Path:
    """Convert `model_id` (a local folder or a Hub repo id) to ONNX; return the cached file's path."""
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
    return export.path


def model_folder(model: str, client: Any = None, revision: str | None = None) -> Path:
    """A local folder as is; anything else is a Hub repo id, fetched (or found offline) by the Hub client."""
    local = Path(model).expanduser()
    if local.is_dir():
        return local
    if client is None:
        from ..hub import HubClient

        client = HubClient()
    folder = Path(client.snapshot(model, revision=revision, allow_patterns=list(_HUB_PATTERNS)))
    if not any(folder.glob("*.safetensors")):  # older repos ship only PyTorch pickles
        folder = Path(client.snapshot(model, revision=revision, allow_patterns=list(_HUB_LEGACY_WEIGHTS)))
    return folder


def convert_cli(args: Any) -> int:
    """Convert `args.model` to ONNX into `args.output`; print where it went and how it validated."""
    quiet = bool(getattr(args, "quiet", False))
    if getattr(args, "validate", True) is False and not quiet:
        print(
            "hfmodels convert: note: --no-validate does not apply to --to onnx; ONNX exports are always "
            "validated against PyTorch",
            file=sys.stderr,
        )
    try:
        export = export_onnx(
            model_folder(str(args.model)),
            default_cache_root(),
            opset=getattr(args, "opset", None),
            exporter=getattr(args, "exporter", None),
            model_id=str(args.model),
            progress=not quiet and sys.stderr.isatty(),
        )
        written = copy_out(export, Path(args.output))
    except HFModelsError as exc:
        print(f"hfmodels convert: error: {exc}", file=sys.stderr)
        return 1
    if not quiet:
        print(summary(export, written))
    return 0


def copy_out(export: OnnxExport, output: Path) -> Path:
    """Copy the cached conversion (model, external data, record) into `output`, each file atomically."""
    output.mkdir(parents=True, exist_ok=True)
    for item in sorted(export.path.parent.iterdir()):
        if not item.is_file() or item.is_symlink():
            continue
        staged = output / f".{item.name}.{os.getpid()}.tmp"
        try:
            shutil.copyfile(item, staged)
            os.replace(staged, output / item.name)
        finally:
            staged.unlink(missing_ok=True)
    return output / export.path.name


def summary(export: OnnxExport, written: Path) -> str:
    def shape(shapes: Mapping[str, tuple[int, ...]]) -> str:
        return ", ".join(f"{name} {'x'.join(map(str, dims))}" for name, dims in shapes.items())

    origin = "converted now" if export.source == "pytorch_conversion" else "from the cache"
    return "\n".join(
        (
            f"wrote {written} ({export.file_size / 1e6:.2f} MB, {origin}; "
            f"conversion took {export.seconds:.1f} s)",
            f"  exporter {export.exporter}, opset {export.opset}, spec {export.spec_name}, "
            f"sha256 {export.sha256[:16]}",
            f"  exported at {shape(export.export_shape)}",
            f"  validated in onnxruntime against PyTorch at {shape(export.validation_shape)}: "
            f"max abs diff {export.max_abs_diff:.3g}, max rel diff {export.max_rel_diff:.3g}",
            f"  record: {written.parent / RECORD_FILE}",
        )
    )
