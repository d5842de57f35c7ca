"""Mode `openvino`: the validated ONNX export compiled by OpenVINO for the device, checked against PyTorch.

OpenVINO picks bf16 on CPUs that have it unless told otherwise, so CPU and GPU are asked for f32,
and the precision the compiled model actually uses is read back and recorded. An input missing
from the feed would run as an empty tensor without an error, so every input must be fed by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hfmodels.errors import CheckFailed, HardwareUnavailableError
from pytest_hfmodels.runners.exported import ExportedModelRunner

if TYPE_CHECKING:
    from pytest_hfmodels.convert.onnx.with_past import WithPastExport
    from pytest_hfmodels.runners.generation import Graph

#: OpenVINO element type name -> the precision names the result rows use
PRECISION_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
#: devices that can compute in f32 when asked (NPUs compute in f16 whatever the hint)
_F32_CAPABLE = ("CPU", "GPU")


def openvino_device(label: str, kind: str, index: int) -> str:
    """The OpenVINO device name for a detected device: cpu -> CPU, ov-gpu -> GPU, ov-gpu1 -> GPU.1."""
    if kind == "cpu":
        return "CPU"
    base = label.removeprefix("ov-").rstrip("0123456789").upper()
    return f"{base}.{index}" if index else base


class OpenVinoRunner(ExportedModelRunner):
    mode = "openvino"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.compiled: Any = None
        self.request: Any = None
        self.ov_device: str | None = None

    def load_runtime(self, onnx_path: Path) -> None:
        import openvino

        core = openvino.Core()
        device = openvino_device(self.device.label, self.device.kind, self.device.index)
        present = core.available_devices
        if device not in present and f"{device}.0" not in present:
            raise HardwareUnavailableError(
                f"OpenVINO {openvino.__version__} has no device {device!r} (available: {', '.join(present)})"
            )
        config: dict[str, Any] = (
            {"INFERENCE_PRECISION_HINT": "f32"} if device.split(".")[0] in _F32_CAPABLE else {}
        )
        if self.threads is not None and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = self.threads
        self.compiled = core.compile_model(core.read_model(str(onnx_path)), device, config)
        if device == "CPU":
            self.threads_used = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        used = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.precision = PRECISION_NAMES.get(used, used)
        self.request = self.compiled.create_infer_request()
        self.ov_device = device

    def infer(self, inputs: dict[str, Any]) -> dict[str, Any]:
        feed: dict[Any, Any] = {}
        fed: set[str] = set()
        for port in self.compiled.inputs:
            names = sorted(port.get_names() & inputs.keys())
            if not names:
                raise CheckFailed(
                    f"openvino: model input {sorted(port.get_names())} is not fed "
                    f"(inputs: {sorted(inputs)}); OpenVINO would run it as an empty tensor"
                )
            feed[port] = inputs[names[0]]
            fed.update(names)
        unused = sorted(set(inputs) - fed)
        if unused:
            raise CheckFailed(f"openvino: inputs {unused} match no input of the compiled model")
        results = self.request.infer(feed)
        wanted = set(self.reference.spec.outputs)
        outputs: dict[str, Any] = {}
        for port in self.compiled.outputs:
            name = next(iter(sorted(port.get_names() & wanted)), port.get_any_name())
            outputs[name] = results[port].copy()  # the request reuses its buffers on the next call
        return outputs

    def open_generation(self, export: WithPastExport) -> dict[str, Graph]:
        """The with-past graphs compiled for the forward model's device: f32 where the device can
        compute it (read back into `generation_precision`), the latency hint (one request at a time)."""
        import openvino

        from pytest_hfmodels.runners.generation import OpenVinoGraph

        if self.ov_device is None:
            raise RuntimeError("openvino: load() the model before generating")
        device = self.ov_device
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if device.split(".")[0] in _F32_CAPABLE:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if self.threads is not None and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = self.threads
        core = openvino.Core()
        graphs: dict[str, Graph] = {}
        for name, path in (("encoder", export.encoder_path), ("decoder", export.decoder_path)):
            if path is None:
                continue
            compiled = core.compile_model(core.read_model(str(path)), device, config)
            if name == "decoder":
                used = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
                self.generation_precision = PRECISION_NAMES.get(used, used)
            graphs[name] = OpenVinoGraph(compiled, export.graph_inputs[name], export.graph_outputs[name])
        return graphs

    def close_runtime(self) -> None:
        self.request = self.compiled = None


RUNNER = OpenVinoRunner
