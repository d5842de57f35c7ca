"""What the onnxruntime and openvino modes share: the validated ONNX export of the case's model (from
the cache, or converted once per machine) and its PyTorch original, which every output is checked
against for the same inputs.

The PyTorch reference always runs fp32 on the CPU: one fixed reference for every device and runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.errors import NumericalMismatchError
from pytest_hfmodels.registry.model import ModelEntry
from pytest_hfmodels.runners import checks
from pytest_hfmodels.runners.threads import limit_torch_threads
from pytest_hfmodels.samples import sample_shape

if TYPE_CHECKING:
    from pytest_hfmodels.convert.onnx.cached import OnnxExport


class ExportedModelRunner:
    """Base of the runners that run the ONNX export; subclasses open it in their runtime."""

    mode = ""
    #: the cache root the session uses (--hf-cache-dir); None: `cache.store.default_cache_root()`
    cache_root: Path | None = None
    verify_cache: bool = False  #: rehash the cached conversion before use (--hf-verify-cache)

    def __init__(self, entry: ModelEntry, device: Device) -> None:
        self.entry = entry
        self.device = device
        self.model: Any = None  #: the PyTorch original (hf_runner counts its parameters)
        self.onnx: OnnxExport | None = None  #: the file, its exporter, source, conversion time and diffs
        self.precision: str | None = None  #: what the runtime actually computes in (fp32, bf16, fp16)
        self.reference: Any = None  #: convert.onnx.reference.ReferenceModel
        self.threads: int | None = None
        self.threads_used: int | None = None  #: the runtime's, set by `load_runtime` where it can tell

    def load(self, model_dir: Path) -> None:
        from pytest_hfmodels.convert.onnx.cached import export_onnx
        from pytest_hfmodels.convert.onnx.reference import load_reference
        from pytest_hfmodels.convert.onnx.specs import read_config, spec_for

        limit_torch_threads(self.threads)  # the export and the PyTorch reference run in this process too
        config = read_config(model_dir)
        spec = spec_for(model_dir, config)
        root = self.cache_root or default_cache_root()
        export = export_onnx(
            model_dir,
            root,
            spec,
            tolerances=self.entry.tolerances,
            model_id=self.entry.id,
            full_check=self.verify_cache,
        )
        self.onnx = export
        self.reference = load_reference(model_dir, spec, config)
        self.model = self.reference.model
        self.load_runtime(export.path)

    def load_runtime(self, onnx_path: Path) -> None:
        """Open the ONNX file on the runner's device; set `precision`."""
        raise NotImplementedError

    def make_inputs(self, batch_size: int = 1, input_size: int | None = None) -> dict[str, Any]:
        """Numpy inputs by graph input name, made by the model's own preprocessor; text of
        `input_size` tokens when given (the modes declare no other sized modality). `batch_size` is
        the number of rows: of images, sounds or videos where a model takes text with them."""
        inputs: dict[str, Any] = self.reference.inputs(
            sample_shape(self.reference.spec.modality, batch_size, input_size)
        )
        return inputs

    def infer(self, inputs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def check(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        from pytest_hfmodels.convert.onnx.compare import compare_outputs

        for name, values in outputs.items():
            checks.check_finite(f"{self.mode}.{name}", values)
        expected = self.reference.run(inputs)
        tolerances = self.entry.tolerances
        agreement = compare_outputs(expected, outputs, tolerances.atol, tolerances.rtol)
        if not agreement.ok:
            raise NumericalMismatchError(
                f"{self.mode} on {self.device.label} ({self.precision}) vs PyTorch fp32: "
                f"{agreement.describe(tolerances.atol, tolerances.rtol)}"
            )

    def close(self) -> None:
        self.close_runtime()
        self.model = self.reference = None

    def close_runtime(self) -> None:
        """Release the runtime's session and device memory."""
