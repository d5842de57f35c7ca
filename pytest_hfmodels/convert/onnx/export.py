"""One export with one torch exporter, the output axes it declares, and one run in onnxruntime.

The module exported is the reference's (`reference.load_reference`): a tuple of the spec's named
outputs, so the graph's output names are stable whatever the model's output class.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_hfmodels.convert.onnx.reference import ReferenceModel
from pytest_hfmodels.convert.onnx.specs import ExportSpec
from pytest_hfmodels.errors import ModelConversionError

#: the protobuf limit of one ONNX file; larger models keep their weights in external data
PROTOBUF_LIMIT_BYTES = 2**31


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
