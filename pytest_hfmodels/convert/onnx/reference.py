"""The PyTorch reference an export is made from and every runtime is checked against: the model as
users load it (fp32, CPU), its preprocessors, and the spec resolved against the outputs it returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_hfmodels.convert.onnx.compare import compare_outputs
from pytest_hfmodels.convert.onnx.specs import ExportSpec, load_preprocessors, model_class
from pytest_hfmodels.convert.onnx.wrappers import WRAPPERS, named_outputs
from pytest_hfmodels.errors import ModelConversionError
from pytest_hfmodels.samples import NEEDS_PROCESSOR, InputShape, Preprocessors

#: how closely a wrapper must reproduce the model's own outputs: the same modules on the same inputs,
#: so only a different order of float operations may separate them
WRAPPER_ATOL = WRAPPER_RTOL = 1e-5


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
    # Image-prompt models' processors expand the image token, point-prompted ones' scale the points;
    # other families need none.
    pre = load_preprocessors(model_dir, with_processor=spec.modality in NEEDS_PROCESSOR)
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
        return ReferenceModel(spec, model, named_outputs(model, spec), pre, (sample, sample_out))
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
