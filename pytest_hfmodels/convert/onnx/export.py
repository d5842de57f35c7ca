"""One export with one torch exporter, the output axes it declares, and runs in onnxruntime.

The module exported is the reference's (`reference.load_reference`): a tuple of the spec's named
outputs, so the graph's output names are stable whatever the model's output class.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from pytest_hfmodels.convert.onnx.reference import ReferenceModel
from pytest_hfmodels.convert.onnx.specs import ExportSpec
from pytest_hfmodels.errors import ModelConversionError

#: the protobuf limit of one ONNX file; larger models keep their weights in external data
PROTOBUF_LIMIT_BYTES = 2**31
#: torch's legacy (TorchScript) exporter, torch.onnx.export(dynamo=False)
_LEGACY_EXPORTER = "torch.onnx._internal.torchscript_exporter"


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
            with _onnx_functions_added_only_when_registered():
                torch.onnx.export(
                    reference.module,
                    args,
                    str(path),
                    input_names=input_names,
                    output_names=output_names,
                    dynamic_axes=_legacy_axes(spec, outputs_axes),
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


def _legacy_axes(
    spec: ExportSpec, outputs_axes: Mapping[str, Mapping[int, str]]
) -> dict[str, dict[int, str]]:
    axes = {n: dict(a) for n, a in spec.dynamic_axes.items() if n in spec.inputs}
    axes.update({n: dict(a) for n, a in outputs_axes.items()})
    return axes


@contextmanager
def _onnx_functions_added_only_when_registered() -> Iterator[None]:
    """Let the legacy exporter skip its pass that embeds custom ONNX functions when none is registered.

    After writing the graph, torch's legacy exporter always imports `onnx` (0.4-0.5 s of a 5 s
    conversion, most of it ml_dtypes), parses the bytes it just made and adds the ONNX function of
    every node whose symbolic function has one (`to_function_proto`: onnxscript functions registered
    with `register_custom_op_symbolic`). With no such function registered it can add nothing and
    returns the bytes unchanged; that is checked at each call, and any doubt runs torch's own pass.
    """
    try:  # torch's internals, untyped on purpose: a torch without them exports as it is
        onnx_proto_utils: Any = importlib.import_module(f"{_LEGACY_EXPORTER}.onnx_proto_utils")
        original: Callable[[bytes, Mapping[str, int]], bytes] = onnx_proto_utils._add_onnxscript_fn
    except (ImportError, AttributeError):
        yield
        return

    def add_onnx_functions(model_bytes: bytes, custom_opsets: Mapping[str, int]) -> bytes:
        if not _registers_onnx_functions():
            return model_bytes
        return original(model_bytes, custom_opsets)

    # Exports in two threads may leave one's wrapper in place: harmless, it decides at each call.
    onnx_proto_utils._add_onnxscript_fn = add_onnx_functions
    try:
        yield
    finally:
        onnx_proto_utils._add_onnxscript_fn = original


def _registers_onnx_functions() -> bool:
    """Whether a symbolic function of torch's legacy exporter is an ONNX function (True when unsure)."""
    try:
        registry: Any = importlib.import_module(f"{_LEGACY_EXPORTER}.registration").registry
        for name in registry.all_functions():
            functions = registry.get_function_group(name)._functions  # opset -> symbolic function
            if any(hasattr(functions[opset], "to_function_proto") for opset in functions):
                return True
    except (ImportError, AttributeError, KeyError, TypeError):
        return True
    return False


def onnxruntime_session(
    path: Path, providers: Sequence[Any] = ("CPUExecutionProvider",), threads: int | None = None
) -> Any:
    """An onnxruntime session of the ONNX file; `threads` intra-op threads (None: its default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # shape-inference warnings about renamed dims are noise here
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=list(providers))


def run_session(session: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """One run of an onnxruntime session; outputs by graph output name."""
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(inputs)), strict=True))


def run_onnxruntime(
    path: Path, inputs: Mapping[str, Any], providers: Sequence[Any] = ("CPUExecutionProvider",)
) -> dict[str, Any]:
    """One run of the ONNX file in onnxruntime; outputs by graph output name."""
    return run_session(onnxruntime_session(path, providers), inputs)


def shapes_of(inputs: Mapping[str, Any]) -> dict[str, list[int]]:
    return {name: list(np.shape(value)) for name, value in inputs.items()}
