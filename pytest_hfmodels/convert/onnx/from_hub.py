"""A model named by a local folder or a Hub repo id, converted to ONNX (the verifier, `hfmodels convert`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.convert.onnx.cached import OnnxExport, export_onnx
from pytest_hfmodels.convert.onnx.specs import SPECS, ExportSpec, read_config, spec_for
from pytest_hfmodels.errors import ModelConversionError
from pytest_hfmodels.registry.model import Tolerances

#: files a conversion needs from a Hub repo: config, tokenizer/processor files, safetensors weights
_HUB_PATTERNS = ("*.json", "*.txt", "*.model", "*.safetensors")
_HUB_LEGACY_WEIGHTS = ("pytorch_model*.bin",)
#: the original tools' conversion_config keys, then this tool's own
_ORIGINAL_KEYS = frozenset(
    {"model_type", "opset_version", "input_shapes", "input_names", "output_names", "dynamic_axes"}
)
_CONFIG_KEYS = _ORIGINAL_KEYS | {"opset", "exporter", "atol", "rtol", "cache_dir", "revision"}
_SHAPE_KEYS = frozenset({"batch_size", "sequence_length", "decoder_sequence_length"})


@dataclass(frozen=True)
class ConversionOptions:
    """What a verifier's `conversion_config` may set: the original tools' keys (model_type,
    opset_version, input_shapes, input_names, output_names, dynamic_axes) mapped onto the export,
    and this tool's (opset, exporter, atol, rtol, cache_dir, revision). An unknown key is an error."""

    opset: int | None = None
    exporter: str | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    cache_dir: Path | None = None
    revision: str | None = None
    model_type: str | None = None
    #: input_shapes: {batch_size, sequence_length, decoder_sequence_length}: the export's shape
    input_shapes: Mapping[str, int] | None = None
    input_names: tuple[str, ...] | None = None
    output_names: tuple[str, ...] | None = None
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> ConversionOptions:
        config = dict(config or {})
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise ModelConversionError(
                f"conversion_config: unknown keys {sorted(unknown)} "
                f"(known: {', '.join(sorted(_CONFIG_KEYS))})"
            )
        if "opset" in config and "opset_version" in config and config["opset"] != config["opset_version"]:
            raise ModelConversionError("conversion_config: opset and opset_version differ: give one")
        opset = config.get("opset", config.get("opset_version"))
        default = Tolerances()
        return cls(
            opset=_positive_int("opset_version", opset) if opset is not None else None,
            exporter=config.get("exporter"),
            tolerances=Tolerances(
                float(config.get("atol", default.atol)), float(config.get("rtol", default.rtol))
            ),
            cache_dir=Path(config["cache_dir"]).expanduser() if config.get("cache_dir") else None,
            revision=config.get("revision"),
            model_type=config.get("model_type"),
            input_shapes=_input_shapes(config.get("input_shapes")),
            input_names=_names("input_names", config.get("input_names")),
            output_names=_names("output_names", config.get("output_names")),
            dynamic_axes=_dynamic_axes(config.get("dynamic_axes")),
        )

    def applied_to(self, spec: ExportSpec, model_id: str) -> ExportSpec:
        """The spec with the caller's shapes and output names; names and dynamic axes the spec
        cannot honour are an error naming them (a graph with other names would not be the one asked)."""
        where = f"repo {model_id!r}: conversion_config"
        if self.input_names is not None and set(self.input_names) != set(spec.inputs):
            raise ModelConversionError(
                f"{where}: input_names {list(self.input_names)} differ from the inputs the "
                f"{spec.name!r} export takes: {list(spec.inputs)}"
            )
        outputs = spec.outputs
        if self.output_names is not None:
            unknown = [name for name in self.output_names if name not in spec.outputs]
            if unknown:
                raise ModelConversionError(
                    f"{where}: output_names {unknown} are not outputs of the {spec.name!r} export "
                    f"(it keeps those of {list(spec.outputs)} the model returns)"
                )
            outputs = self.output_names
        for name, axes in (self.dynamic_axes or {}).items():
            if name in spec.inputs and set(axes) != set(spec.dynamic_axes.get(name, {})):
                raise ModelConversionError(
                    f"{where}: dynamic_axes[{name!r}] {sorted(axes)}: the {spec.name!r} export makes "
                    f"axes {sorted(spec.dynamic_axes.get(name, {}))} of {name!r} dynamic"
                )
            if name not in spec.inputs and name not in outputs:
                raise ModelConversionError(
                    f"{where}: dynamic_axes names {name!r}, neither an input nor an output of the export"
                )
        replaced = dataclasses.replace(spec, outputs=outputs)
        if self.input_shapes:
            base = spec.export_shape
            shape = dataclasses.replace(
                base,
                batch=self.input_shapes.get("batch_size", base.batch),
                length=self.input_shapes.get("sequence_length", base.length),
                decoder_length=self.input_shapes.get("decoder_sequence_length", base.decoder_length),
            )
            # Validation runs at a shape differing in every axis, so it still proves them dynamic.
            validate = dataclasses.replace(
                spec.validate_shape,
                batch=shape.batch + 1,
                length=None if shape.length is None else shape.length + 5,
                decoder_length=None if shape.decoder_length is None else shape.decoder_length + 2,
            )
            replaced = dataclasses.replace(replaced, export_shape=shape, validate_shape=validate)
        return replaced


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelConversionError(f"conversion_config: {key}: {value!r} is not a positive integer")
    return value


def _input_shapes(value: Any) -> Mapping[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not set(value) <= _SHAPE_KEYS:
        raise ModelConversionError(
            f"conversion_config: input_shapes must be a mapping of {', '.join(sorted(_SHAPE_KEYS))}, "
            f"got {value!r}"
        )
    return MappingProxyType({key: _positive_int(f"input_shapes.{key}", n) for key, n in value.items()})


def _names(key: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(name, str) for name in value):
        raise ModelConversionError(f"conversion_config: {key} must be a list of names, got {value!r}")
    return tuple(value)


def _dynamic_axes(value: Any) -> Mapping[str, Mapping[int, str]] | None:
    """{name: {axis: symbol}} or {name: [axes]} (torch.onnx.export's two forms); JSON keys are strings."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ModelConversionError(f"conversion_config: dynamic_axes must be a mapping, got {value!r}")
    axes: dict[str, Mapping[int, str]] = {}
    for name, given in value.items():
        try:
            if isinstance(given, Mapping):
                axes[str(name)] = {int(axis): str(symbol) for axis, symbol in given.items()}
            else:
                axes[str(name)] = {int(axis): f"{name}_{axis}" for axis in given}
        except (TypeError, ValueError):
            raise ModelConversionError(
                f"conversion_config: dynamic_axes[{name!r}]: {given!r} is not a list or mapping of axes"
            ) from None
    return MappingProxyType(axes)


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
    if model_type and options.model_type and model_type != options.model_type:
        raise ModelConversionError(
            f"repo {model_id!r}: model_type {model_type!r} and conversion_config model_type "
            f"{options.model_type!r} differ"
        )
    model_type = model_type or options.model_type
    client = getattr(verifier, "client", None)
    revision = options.revision or getattr(verifier, "revision", None)
    model_dir = model_folder(model_id, client, revision)
    spec = export_spec_for(model_id, model_dir, model_type)
    spec = options.applied_to(spec, model_id)
    export = export_onnx(
        model_dir,
        options.cache_dir or getattr(verifier, "cache_dir", None) or default_cache_root(),
        spec,
        options.opset,
        options.exporter,
        tolerances=options.tolerances,
        model_id=model_id,
    )
    return export


def export_spec_for(model_id: str, model_dir: Path, model_type: str | None) -> ExportSpec:
    """The export spec of the model in `model_dir`; `model_type` (the original tools' option) must
    agree with its config.json, or names the spec when the config has no model_type."""
    config = read_config(model_dir)
    found = config.get("model_type")
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
        return SPECS[model_type]
    return spec_for(model_dir, config)


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
