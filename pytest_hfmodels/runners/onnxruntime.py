"""Mode `onnxruntime`: the validated ONNX export in onnxruntime, checked against PyTorch.

The execution provider follows the device; a provider this onnxruntime build lacks, or one the
session silently falls back from, means the device cannot run the case here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hfmodels.errors import HardwareUnavailableError
from pytest_hfmodels.runners.exported import ExportedModelRunner

if TYPE_CHECKING:
    from pytest_hfmodels.convert.onnx.with_past import WithPastExport
    from pytest_hfmodels.runners.generation import Graph

#: device kind -> execution provider
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "rocm": "ROCMExecutionProvider"}


class OnnxRuntimeRunner(ExportedModelRunner):
    mode = "onnxruntime"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session: Any = None
        self.session_io: tuple[list[str], list[str]] | None = None  #: the session's input, output names

    def load_runtime(self, onnx_path: Path) -> None:
        import onnxruntime

        provider = PROVIDERS.get(self.device.kind)
        available = onnxruntime.get_available_providers()
        if provider is None or provider not in available:
            raise HardwareUnavailableError(
                f"onnxruntime {onnxruntime.__version__} cannot run on {self.device.label!r}: it needs "
                f"{provider or 'a provider for ' + self.device.kind}, this build has {', '.join(available)}"
            )
        providers: list[Any] = ["CPUExecutionProvider"]
        if provider == "CUDAExecutionProvider":
            # TF32 would round matmul inputs to 10 mantissa bits: keep the fp32 the precision column says.
            providers.insert(0, (provider, {"device_id": self.device.index, "use_tf32": 0}))
        elif provider == "ROCMExecutionProvider":
            providers.insert(0, (provider, {"device_id": self.device.index}))
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        # onnxruntime cannot say how many threads its default (0) resolved to: leave it unknown.
        self.threads_used = self.threads
        self.session = onnxruntime.InferenceSession(str(onnx_path), options, providers=providers)
        if self.session.get_providers()[0] != provider:
            raise HardwareUnavailableError(
                f"onnxruntime did not enable {provider} on {self.device.label!r} "
                f"(session providers: {self.session.get_providers()})"
            )
        self.precision = "fp32"  # the export is fp32 and no provider above is allowed to lower it

    def infer(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self.session_io is None:  # asked once: the timed rounds call this many times
            self.session_io = (
                [port.name for port in self.session.get_inputs()],
                [port.name for port in self.session.get_outputs()],
            )
        # A repo's own graph may take fewer inputs than the spec makes (no token_type_ids, say).
        input_names, names = self.session_io
        feed = {name: inputs[name] for name in input_names}
        return dict(zip(names, self.session.run(names, feed), strict=True))

    def open_generation(self, export: WithPastExport) -> dict[str, Graph]:
        """The with-past graphs in sessions on the forward session's providers, with its options and
        threads; on a GPU the presents stay there between steps (IO binding)."""
        import onnxruntime

        from pytest_hfmodels.runners.generation import OnnxRuntimeGraph

        if self.session is None:
            raise RuntimeError("onnxruntime: load() the model before generating")
        provider_options = self.session.get_provider_options()
        providers = [(name, provider_options.get(name, {})) for name in self.session.get_providers()]
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        graphs: dict[str, Graph] = {}
        for name, path in (("encoder", export.encoder_path), ("decoder", export.decoder_path)):
            if path is not None:
                session = onnxruntime.InferenceSession(str(path), options, providers=providers)
                graphs[name] = OnnxRuntimeGraph(session)  # IO binding on a GPU, plain runs on the CPU
        self.generation_precision = "fp32"  # the graphs are fp32, and no provider is allowed to lower it
        return graphs

    def close_runtime(self) -> None:
        self.session = self.session_io = None


RUNNER = OnnxRuntimeRunner
