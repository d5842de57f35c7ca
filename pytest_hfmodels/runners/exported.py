"""What the onnxruntime and openvino modes share: the validated ONNX export of the case's model (from
the cache, or converted once per machine) and its PyTorch original, which every output is checked
against for the same inputs.

The PyTorch reference always runs fp32 on the CPU: one fixed reference for every device and runtime.

Generation (`make_generation_inputs`, `generate`, `check_generation`, `decode`) runs the with-past
graphs of `convert.onnx.with_past`, exported (or taken from the cache) and opened on the first call
only, so forward cases never pay for them; its tokens are checked against PyTorch's greedy `generate`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.errors import CheckFailed, NumericalMismatchError
from pytest_hfmodels.registry.model import ModelEntry
from pytest_hfmodels.runners import checks
from pytest_hfmodels.runners.threads import limit_torch_threads
from pytest_hfmodels.samples import sample_shape

if TYPE_CHECKING:
    from pytest_hfmodels.convert.onnx.cached import OnnxExport
    from pytest_hfmodels.convert.onnx.hub_file import HubOnnx
    from pytest_hfmodels.convert.onnx.with_past import WithPastExport
    from pytest_hfmodels.runners.generation import GenerationInputs, GenerationRun, Graph


class ExportedModelRunner:
    """Base of the runners that run the ONNX export; subclasses open it in their runtime."""

    mode = ""
    #: the cache root the session uses (--hf-cache-dir); None: `cache.store.default_cache_root()`
    cache_root: Path | None = None
    verify_cache: bool = False  #: rehash the cached conversion before use (--hf-verify-cache)
    #: the Hub repo whose own ONNX file is used before converting (a Hub model with its own weights)
    hub_repo: str | None = None
    onnx_files: tuple[str, ...] = ()  #: the repo files tried, in order (--hf-onnx-file)
    offline: bool = False  #: the HF cache answers for the Hub

    def __init__(self, entry: ModelEntry, device: Device) -> None:
        self.entry = entry
        self.device = device
        self.model: Any = None  #: the PyTorch original (hf_runner counts its parameters)
        #: the repo's own file (HubOnnx) or this tool's conversion (OnnxExport), and how it was made
        self.onnx: OnnxExport | HubOnnx | None = None
        self.precision: str | None = None  #: what the runtime actually computes in (fp32, bf16, fp16)
        self.reference: Any = None  #: convert.onnx.reference.ReferenceModel
        self.threads: int | None = None
        self.threads_used: int | None = None  #: the runtime's, set by `load_runtime` where it can tell
        self.model_dir: Path | None = None  #: the folder `load` read; generation exports from it
        #: the with-past graph(s) generation runs; None until the first generation call
        self.generation_export: WithPastExport | None = None
        #: wall time of the first generation call's set-up: the export (or the cache hit) and the sessions
        self.generation_load_s: float | None = None
        self.generation_session_s: float | None = None  #: of that, opening the sessions alone
        self.generation_graphs: dict[str, Graph] = {}  #: decoder, and encoder for encoder-decoders
        self.generation_precision: str | None = None  #: what the with-past decoder computes in
        self._positions: int | None = None  #: learned decoder positions (`generation.learned_positions`)

    def load(self, model_dir: Path) -> None:
        from pytest_hfmodels.convert.onnx.source import model_onnx

        limit_torch_threads(self.threads)  # the export and the PyTorch reference run in this process too
        self.model_dir = model_dir
        onnx, reference = model_onnx(
            model_dir,
            self.cache_root or default_cache_root(),
            model_id=self.entry.id,
            tolerances=self.entry.tolerances,
            repo_id=self.hub_repo,
            revision=self.entry.revision,
            onnx_files=self.onnx_files,
            offline=self.offline,
            full_check=self.verify_cache,
        )
        self.onnx, self.reference = onnx, reference
        self.model = reference.model if reference is not None else None
        self.load_runtime(onnx.path)

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
        if self.onnx is not None and self.onnx.source == "huggingface":
            # A repo's own file returns the outputs its exporter chose: those PyTorch has are compared.
            expected = {name: value for name, value in expected.items() if name in outputs}
        tolerances = self.entry.tolerances
        agreement = compare_outputs(expected, outputs, tolerances.atol, tolerances.rtol)
        if not agreement.ok:
            raise NumericalMismatchError(
                f"{self.mode} on {self.device.label} ({self.precision}) vs PyTorch fp32: "
                f"{agreement.describe(tolerances.atol, tolerances.rtol)}"
            )

    def make_generation_inputs(self, batch_size: int = 1, input_size: int | None = None) -> GenerationInputs:
        """Numpy prompts by the model's own tokenizer or feature extractor (left-padded for decoder-only
        models); an encoder-decoder's with the decoder prompt `generate` starts from. Makes the with-past
        export on the first call, so a timed `generate` never includes it."""
        from pytest_hfmodels.runners.generation import build_generation_inputs, with_decoder_prompt

        export = self._generation_ready()
        inputs = build_generation_inputs(
            self._generation_layout(), self.reference.preprocessors, batch_size, input_size
        )
        return inputs if not export.encoder_inputs else with_decoder_prompt(self.model, inputs)

    def generate(self, inputs: GenerationInputs, new_tokens: int) -> GenerationRun:
        """Greedy decoding of exactly `new_tokens` tokens per row through the with-past graph(s)."""
        from pytest_hfmodels.convert.onnx.with_past import DECODER_ONLY
        from pytest_hfmodels.runners.generation import (
            check_positions,
            greedy_decoder_only,
            greedy_encoder_decoder,
            greedy_rules,
        )

        export = self._generation_ready()
        check_positions(self._positions, inputs, new_tokens, export.model_type)
        rules = greedy_rules(self.model.generation_config)
        graphs = self.generation_graphs
        if export.architecture == DECODER_ONLY:
            return greedy_decoder_only(graphs["decoder"], inputs, new_tokens, rules, export)
        return greedy_encoder_decoder(graphs["encoder"], graphs["decoder"], inputs, new_tokens, rules, export)

    def check_generation(self, inputs: GenerationInputs, run: GenerationRun) -> None:
        """Every token equal to PyTorch's greedy `generate` (fp32, CPU) for the same prompt and batch."""
        from pytest_hfmodels.runners.generation import first_difference, pytorch_generate, shape_problem

        problem = shape_problem(run, inputs.batch_size)
        if problem:
            raise CheckFailed(f"{self.mode} generation: {problem}")
        expected = pytorch_generate(self.model, inputs, run.new_tokens)
        difference = first_difference(expected, run)
        if difference is not None:
            row, step, want, got = difference
            raise NumericalMismatchError(
                f"{self.mode} on {self.device.label} ({self.generation_precision}) generated token {got} "
                f"at batch row {row}, step {step} (new token {step + 1} of {run.new_tokens}); PyTorch "
                f"generate (fp32, CPU) gives {want} for the same prompt (batch {inputs.batch_size}, "
                f"{inputs.prompt_tokens} prompt tokens)"
            )

    def decode(self, run: GenerationRun) -> list[str]:
        """The generated text of each row, by the model's tokenizer, special tokens skipped."""
        tokenizer = self.reference.preprocessors.tokenizer
        return [
            str(text)
            for text in tokenizer.batch_decode([list(r) for r in run.tokens], skip_special_tokens=True)
        ]

    def _generation_layout(self) -> Any:
        from pytest_hfmodels.convert.onnx.specs import read_config
        from pytest_hfmodels.convert.onnx.with_past import generation_layout

        if self.model_dir is None:
            raise RuntimeError(f"{self.mode}: load() the model before generating")
        return generation_layout(read_config(self.model_dir), str(self.model_dir / "config.json"))

    def _generation_ready(self) -> WithPastExport:
        """The with-past export and its open graphs, made on the first call."""
        from pytest_hfmodels.convert.onnx.with_past import export_with_past
        from pytest_hfmodels.runners.generation import learned_positions

        if self.generation_export is not None and self.generation_graphs:
            return self.generation_export
        if self.model_dir is None or self.reference is None:
            raise RuntimeError(f"{self.mode}: load() the model before generating")
        start = time.perf_counter()
        export = export_with_past(
            self.model_dir,
            self.cache_root or default_cache_root(),
            tolerances=self.entry.tolerances,
            model_id=self.entry.id,
            full_check=self.verify_cache,
        )
        opened = time.perf_counter()
        self._positions = learned_positions(self.model)
        self.generation_graphs = self.open_generation(export)
        self.generation_session_s = time.perf_counter() - opened
        self.generation_load_s = time.perf_counter() - start
        self.generation_export = export
        return export

    def open_generation(self, export: WithPastExport) -> dict[str, Graph]:
        """Open the with-past graph(s) in the runtime, on the forward session's device and settings."""
        raise NotImplementedError

    def close(self) -> None:
        self.close_runtime()
        self.generation_graphs = {}
        self.model = self.reference = None

    def close_runtime(self) -> None:
        """Release the runtime's session and device memory."""
