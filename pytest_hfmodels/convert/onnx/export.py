"""One export with one torch exporter, and the PyTorch reference an export is checked against.

The reference wraps the model in a module returning a tuple of the spec's named outputs, so the
graph's output names are stable whatever the model's output class. Where a model's own forward
cannot be traced with dynamic axes, the spec names a wrapper of `WRAPPERS` that runs the model's
modules without the offending step; it must reproduce the model's outputs before it is exported.
Comparison follows numpy's `allclose` rule (|actual - expected| <= atol + rtol * |expected|,
elementwise).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_hfmodels.convert.onnx.specs import ExportSpec, load_preprocessors, model_class
from pytest_hfmodels.errors import ModelConversionError
from pytest_hfmodels.samples import InputShape, Preprocessors, image_size

#: the protobuf limit of one ONNX file; larger models keep their weights in external data
PROTOBUF_LIMIT_BYTES = 2**31
#: how closely a wrapper must reproduce the model's own outputs: the same modules on the same inputs,
#: so only a different order of float operations may separate them
WRAPPER_ATOL = WRAPPER_RTOL = 1e-5


@dataclass(frozen=True)
class Agreement:
    """How closely one runtime's outputs match the reference's."""

    max_abs_diff: float
    max_rel_diff: float  #: over elements whose reference magnitude exceeds atol (elsewhere atol rules)
    ok: bool
    problems: tuple[str, ...] = ()  #: missing outputs, shape mismatches, non-finite values

    def describe(self, atol: float, rtol: float) -> str:
        what = (
            f"max abs diff {self.max_abs_diff:.3g}, max rel diff {self.max_rel_diff:.3g} "
            f"(atol {atol:g}, rtol {rtol:g})"
        )
        return "; ".join((what, *self.problems))


def compare_outputs(
    expected: Mapping[str, Any], actual: Mapping[str, Any], atol: float, rtol: float
) -> Agreement:
    """Compare every expected output with the actual one of the same name."""
    max_abs = max_rel = 0.0
    ok = True
    problems: list[str] = []
    for name, want in expected.items():
        want = np.asarray(want, dtype=np.float64)
        if name not in actual:
            problems.append(f"output {name!r} missing (got {sorted(actual)})")
            ok = False
            continue
        got = np.asarray(actual[name], dtype=np.float64)
        if got.shape != want.shape:
            problems.append(f"output {name!r}: shape {got.shape}, PyTorch gives {want.shape}")
            ok = False
            continue
        if not np.isfinite(got).all():
            problems.append(f"output {name!r}: {int((~np.isfinite(got)).sum())} non-finite values")
            ok = False
        diff = np.abs(got - want)
        max_abs = max(max_abs, float(np.nanmax(diff, initial=0.0)))
        large = np.abs(want) > atol
        if large.any():
            max_rel = max(max_rel, float(np.nanmax(diff[large] / np.abs(want[large]))))
        ok = ok and bool(np.all(diff <= atol + rtol * np.abs(want)))
    return Agreement(max_abs, max_rel, ok, tuple(problems))


@dataclass
class ReferenceModel:
    """The PyTorch model (fp32, CPU), its preprocessors, and the spec resolved against its outputs."""

    spec: ExportSpec
    model: Any
    module: Any  #: the model wrapped to return the spec's outputs as a tuple
    preprocessors: Preprocessors
    #: inputs at the spec's export shape and the outputs they gave (the run that resolved the outputs)
    export_sample: tuple[dict[str, Any], dict[str, Any]]

    def inputs(self, shape: InputShape) -> dict[str, Any]:
        return self.spec.sample_inputs(self.preprocessors, self.model.config, shape)

    def run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        import torch

        with torch.inference_mode():
            results = self.module(
                *(torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.spec.inputs)
            )
        return {
            name: value.detach().float().numpy()
            for name, value in zip(self.spec.outputs, results, strict=True)
        }

    def parameter_bytes(self) -> int:
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return int(sum(t.numel() * t.element_size() for t in tensors))


def load_reference(model_dir: Path, spec: ExportSpec, config: Mapping[str, Any]) -> ReferenceModel:
    """Load the model the way users do, then keep the candidate outputs it actually returns."""
    import torch
    import transformers

    transformers.logging.disable_progress_bar()
    model = model_class(model_dir, config).from_pretrained(model_dir, dtype=torch.float32).eval()
    # Image-prompt models' processors expand the image token; other families need none.
    pre = load_preprocessors(model_dir, with_processor=spec.modality == "image-prompt")
    sample = spec.sample_inputs(pre, model.config, spec.export_shape)
    with torch.inference_mode():
        returned = model(**{k: torch.from_numpy(v) for k, v in sample.items()}, **spec.forward_kwargs)
    outputs = tuple(name for name in spec.outputs if torch.is_tensor(returned.get(name)))
    if not outputs:
        raise ModelConversionError(
            f"{model_dir}: {type(model).__name__} returns {sorted(returned.keys())}, "
            f"none of the outputs export spec {spec.name!r} keeps ({list(spec.outputs)})"
        )
    spec = dataclasses.replace(spec, outputs=outputs)
    sample_out = {name: returned[name].detach().float().numpy() for name in outputs}
    if spec.wrapper is None:
        return ReferenceModel(spec, model, _named_outputs(model, spec), pre, (sample, sample_out))
    if spec.wrapper not in WRAPPERS:
        raise ModelConversionError(
            f"export spec {spec.name!r}: unknown wrapper {spec.wrapper!r} "
            f"(known: {', '.join(sorted(WRAPPERS))})"
        )
    reference = ReferenceModel(spec, model, WRAPPERS[spec.wrapper](model, spec), pre, (sample, sample_out))
    # The wrapper is what gets exported and what every runtime is checked against: it must be the model.
    agreement = compare_outputs(sample_out, reference.run(sample), WRAPPER_ATOL, WRAPPER_RTOL)
    if not agreement.ok:
        raise ModelConversionError(
            f"{model_dir}: export wrapper {spec.wrapper!r} does not reproduce {type(model).__name__}: "
            f"{agreement.describe(WRAPPER_ATOL, WRAPPER_RTOL)}"
        )
    return reference


def _named_outputs(model: Any, spec: ExportSpec) -> Any:
    import torch

    names, outputs, kwargs = spec.inputs, spec.outputs, dict(spec.forward_kwargs)

    class NamedOutputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> tuple[Any, ...]:
            result = self.model(**dict(zip(names, tensors, strict=True)), **kwargs)
            return tuple(result[name] for name in outputs)

    return NamedOutputs().eval()


def _projected_image_features(model: Any, pixel_values: Any) -> Any:
    """What LLaVA-type models' `get_image_features` computes before splitting the batch: the vision
    tower's configured layer(s), CLS dropped by the "default" strategy, through the projector. One
    row per image (or tile), one feature vector per image token."""
    import torch

    config, inner = model.config, model.model
    layers = config.vision_feature_layer
    layers = [layers] if isinstance(layers, int) else list(layers)
    first = 1 if config.vision_feature_select_strategy == "default" else 0
    hidden = inner.vision_tower(pixel_values, output_hidden_states=True).hidden_states
    selected = torch.cat([hidden[layer][:, first:] for layer in layers], dim=-1)
    return inner.multi_modal_projector(selected)


def _llava_logits(model: Any, spec: ExportSpec) -> Any:
    """LLaVA's forward with the image features kept as one tensor.

    `LlavaModel.get_image_features` turns the batch of features into a Python list, which the tracer
    unrolls into as many slices as the export sample had images: the graph then fixes the batch size.
    This module computes the features as that method does (vision tower, the configured layer(s),
    CLS dropped by the "default" strategy, the projector) and hands them to the model's own forward
    as `mm_encoder_outputs`, which embeds the prompt and scatters them into the image tokens.
    """
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    names, kwargs = spec.inputs, dict(spec.forward_kwargs)

    class LlavaLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> tuple[Any, ...]:
            inputs = dict(zip(names, tensors, strict=True))
            features = _projected_image_features(self.model, inputs.pop("pixel_values"))
            features = features.flatten(0, 1)  # one row per image token
            image = BaseModelOutputWithPooling(pooler_output=(features,))
            result = self.model(**inputs, mm_encoder_outputs={"image": image}, **kwargs)
            return (result["logits"],)

    return LlavaLogits().eval()


def _llava_next_logits(model: Any, spec: ExportSpec) -> Any:
    """LLaVA-NeXT's forward for images of one size, the sample's, with the image features one tensor.

    `LlavaNextModel.get_image_features` splits the tiles by image and `pack_image_features` packs each
    image's features in a Python loop, with the tile grid and the unpadding read from `image_sizes`:
    tracing unrolls the loop into a fixed batch. For images of one size the tile count, the grid and
    the unpadded region are the same for every image, so this module packs the batch at once: the
    vision tower on every tile, the configured layer(s), CLS dropped by the "default" strategy, the
    projector, then per image the base view's features followed by the tiles' feature grid, unpadded
    and closed by `image_newline` per row, as `pack_image_features` does (its own helpers give the grid
    and the region). The size is the vision tower's image_size (what `samples.model_inputs` gives): an
    export serves that size only. `image_sizes` stays a graph input and guards it: an image of another
    size gets NaN features, so its row's logits are not finite and the runners' checks fail; run
    outside tracing (the PyTorch reference) the module refuses such `image_sizes` by name.
    """
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling
    from transformers.models.llava_next import modeling_llava_next as llava_next

    names, kwargs = spec.inputs, dict(spec.forward_kwargs)
    config = model.config
    height, width = image_size(config)
    tile = config.vision_config.image_size
    side = tile // config.vision_config.patch_size  # features per tile along each axis
    pinpoints = config.image_grid_pinpoints
    tiles = llava_next.image_size_to_num_patches((height, width), pinpoints, tile)  # the base view too
    rows, cols = llava_next.get_anyres_image_grid_shape((height, width), pinpoints, tile)
    # The region unpad_image keeps of the tiles' (rows * side, cols * side) feature grid.
    positions = torch.arange(rows * side * cols * side).view(1, rows * side, cols * side)
    kept = llava_next.unpad_image(positions, (height, width))
    top, left = divmod(int(kept[0, 0, 0]), cols * side)
    kept_h, kept_w = kept.shape[1:]

    class LlavaNextLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> tuple[Any, ...]:
            inputs = dict(zip(names, tensors, strict=True))
            inner = self.model.model
            pixel_values, sizes = inputs.pop("pixel_values"), inputs.pop("image_sizes")
            if torch._C._get_tracing_state() is None and bool((sizes != torch.tensor([height, width])).any()):
                raise ModelConversionError(
                    f"export wrapper 'llava_next' serves {height}x{width} images only, not image_sizes "
                    f"{sizes.tolist()}"
                )
            features = _projected_image_features(self.model, pixel_values.flatten(0, 1))  # every tile
            dim = features.shape[-1]
            features = features.reshape(-1, tiles, side * side, dim)  # (images, tiles, tokens, dim)
            base = features[:, 0]
            newline = inner.image_newline.to(features.dtype)
            if tiles > 1:
                grid = features[:, 1:].reshape(-1, rows, cols, side, side, dim)
                grid = grid.permute(0, 5, 1, 3, 2, 4).reshape(-1, dim, rows * side, cols * side)
                grid = grid[:, :, top : top + kept_h, left : left + kept_w]
                ends = newline.view(1, -1, 1, 1).expand(grid.shape[0], dim, kept_h, 1)
                grid = torch.cat((grid, ends), dim=-1).flatten(2, 3).transpose(1, 2)
                packed = torch.cat((base, grid), dim=1)
            else:
                packed = torch.cat((base, newline.view(1, 1, -1).expand(base.shape[0], 1, dim)), dim=1)
            served = (sizes == torch.tensor([height, width], dtype=sizes.dtype)).all(dim=-1)
            packed = torch.where(served.view(-1, 1, 1), packed, torch.full_like(packed, float("nan")))
            image = BaseModelOutputWithPooling(pooler_output=(packed.flatten(0, 1),))
            result = self.model(**inputs, mm_encoder_outputs={"image": image}, **kwargs)
            return (result["logits"],)

    return LlavaNextLogits().eval()


#: spec.wrapper -> a function (model, resolved spec) returning the module to export
WRAPPERS: Mapping[str, Callable[[Any, ExportSpec], Any]] = {
    "llava": _llava_logits,
    "llava_next": _llava_next_logits,
}


def output_axes(
    spec: ExportSpec, shapes: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
) -> dict[str, dict[int, str]]:
    """Output axes that changed between two (inputs, outputs) runs, named after the input axis that did.

    Deriving them from the model's behaviour keeps fixed sizes (classes, vocabulary) static whatever
    head the model has.
    """
    (in_a, out_a), (in_b, out_b) = shapes
    labelled = {
        (in_a[name].shape[axis], in_b[name].shape[axis]): label
        for name, axes in spec.dynamic_axes.items()
        if name in in_a
        for axis, label in axes.items()
    }
    axes: dict[str, dict[int, str]] = {}
    for name in spec.outputs:
        for axis, (size_a, size_b) in enumerate(zip(out_a[name].shape, out_b[name].shape, strict=True)):
            if size_a != size_b:
                axes.setdefault(name, {})[axis] = labelled.get((size_a, size_b), f"{name}_{axis}")
    return axes


def export_file(
    exporter: str,
    reference: ReferenceModel,
    inputs: Mapping[str, Any],
    outputs_axes: Mapping[str, Mapping[int, str]],
    path: Path,
    opset: int,
) -> None:
    """Write `path` with one torch exporter; the caller validates it."""
    import torch

    spec = reference.spec
    args = tuple(torch.from_numpy(np.ascontiguousarray(inputs[name])) for name in spec.inputs)
    input_names, output_names = list(spec.inputs), list(spec.outputs)
    # Tracer and deprecation warnings are expected on HF models; validation at another shape, not a
    # warning, decides whether the export is right.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            axes = {n: dict(a) for n, a in spec.dynamic_axes.items() if n in spec.inputs}
            axes.update({n: dict(a) for n, a in outputs_axes.items()})
            torch.onnx.export(
                reference.module,
                args,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        elif exporter == "dynamo":
            dims: dict[str, Any] = {}

            def dim(label: str) -> Any:
                return dims.setdefault(label, torch.export.Dim(label, min=1))

            per_input = tuple(
                {axis: dim(label) for axis, label in spec.dynamic_axes.get(n, {}).items()} or None
                for n in spec.inputs
            )
            torch.onnx.export(
                reference.module,
                args,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=(per_input,),
                opset_version=opset,
                dynamo=True,
                verbose=False,
                external_data=reference.parameter_bytes() >= PROTOBUF_LIMIT_BYTES,
            )
        else:
            raise ModelConversionError(f"unknown exporter {exporter!r} (known: legacy, dynamo)")
    if not path.is_file():
        raise ModelConversionError(f"the {exporter} exporter wrote no {path.name}")


def run_onnxruntime(
    path: Path, inputs: Mapping[str, Any], providers: Sequence[Any] = ("CPUExecutionProvider",)
) -> dict[str, Any]:
    """One run of the ONNX file in onnxruntime; outputs by graph output name."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # shape-inference warnings about renamed dims are noise here
    session = onnxruntime.InferenceSession(str(path), options, providers=list(providers))
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(inputs)), strict=True))


def shapes_of(inputs: Mapping[str, Any]) -> dict[str, list[int]]:
    return {name: list(np.shape(value)) for name, value in inputs.items()}
