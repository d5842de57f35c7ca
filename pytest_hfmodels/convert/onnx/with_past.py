"""ONNX graphs for generation with past key/values, validated against PyTorch, cached once per machine.

Decoder-only models (any causal language model transformers loads with AutoModelForCausalLM whose cache
is a DynamicCache of plain layers: GPT-2, Llama, Qwen2, ...) get ONE merged graph, `decoder.onnx`:

    input_ids [batch, new]   attention_mask [batch, past + new]   position_ids [batch, new]
    past_key_values.{i}.key|value [batch, kv_heads, past, head_dim]
    -> logits [batch, vocab] (the last position's only)
       present.{i}.key|value [batch, kv_heads, past + new, head_dim]

A past of length 0 is the prefill, so one graph runs every step, and prefill and decode cannot drift apart.

Encoder-decoder models (T5, Whisper) get an encoder graph and ONE decoder graph:

    encoder.onnx: the encoder's inputs -> encoder_hidden_states, and every decoder layer's cross-attention
                  keys and values, present.{i}.encoder.key|value [batch, heads, encoder_sequence, head_dim]
    decoder.onnx: decoder_input_ids [batch, new], encoder_attention_mask (T5), encoder_hidden_states (where
                  the decoder still reads it; Whisper's does not, and the graph then has no such input),
                  past_key_values.{i}.decoder.key|value (self-attention, grows by `new` each step),
                  past_key_values.{i}.encoder.key|value (cross-attention, the encoder graph's, fixed)
                  -> logits [batch, vocab], present.{i}.decoder.key|value

Why this layout rather than the two the facts file measured: cross-attention keys and values depend on
the encoder's output alone, so they are computed once per prompt, in the encoder graph (a one-token
decoder pass inside it makes them; the export prunes everything of that pass but the key and value
projections). A merged decoder that recomputes them projects the whole encoder output twice per layer
and step (Whisper: 1500 frames); an init decoder plus a with-past decoder avoids that too, but is three
graphs holding the decoder's weights twice, and prefill and decode run different graphs. Here every
decoder step, prefill (past length 0) included, is the same graph, as for decoder-only models.

Export uses the legacy exporter (torch.onnx.export(dynamo=False)): 10x faster than dynamo here and the
same decode speed. What the facts file found on this stack decides the details: the wrapper fills the
cache layers directly (a cache built from (k, v) pairs traces into a one-input Concat that OpenVINO
rejects at past length 0); the wrapper is put in eval mode (else dropout comes back); the trace has a
batch of 2, a past of 3 and 4 new tokens (a GQA graph traced at one new token only runs one token) and
always feeds the attention mask (GQA without one does not export).

Every graph is validated in onnxruntime against the PyTorch wrapper at two shapes with a non-empty
past, neither the traced one (batch 1, past 5, 1 new token; batch 3, past 7, 3 new tokens with a padded
row), and at a prefill (past 0); an output beyond the entry's tolerances is a ModelConversionError
naming the graph, the shape, the output and the difference.
"""

from __future__ import annotations

import platform
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_hfmodels.cache.manifest import files_size
from pytest_hfmodels.cache.store import build_once, content_key
from pytest_hfmodels.convert.onnx.build import library_versions
from pytest_hfmodels.convert.onnx.cached import LOCK_TIMEOUT_S, model_content_hash
from pytest_hfmodels.convert.onnx.compare import compare_outputs
from pytest_hfmodels.convert.onnx.specs import DEFAULT_OPSET, model_class, read_config
from pytest_hfmodels.errors import GenerationUnsupportedError, ModelConversionError
from pytest_hfmodels.registry.model import Tolerances

#: the cache kind of with-past exports: `<cache_root>/onnx-with-past/<model_type>-<key>/`
KIND = "onnx-with-past"
#: bump when the way a with-past export is made changes, so old cache entries are not reused
BUILDER_VERSION = 1
EXPORTER = "legacy"
DECODER_ONLY = "decoder-only"
ENCODER_DECODER = "encoder-decoder"
DECODER_FILE = "decoder.onnx"
ENCODER_FILE = "encoder.onnx"
#: encoder-decoder families with a with-past export, and the inputs their encoder takes
ENCODER_INPUTS: Mapping[str, tuple[str, ...]] = {
    "t5": ("input_ids", "attention_mask"),
    "whisper": ("input_features",),
}
#: config.json keys of models whose prompts hold images, sounds or videos besides text
_MULTIMODAL_KEYS = ("vision_config", "audio_config", "image_token_index", "image_token_id")
#: (batch, past, new tokens) of the trace; see the module docstring for why these
TRACE_SHAPE = (2, 3, 4)
#: (batch, past, new tokens) of validation: two with a past, then a prefill
VALIDATION_SHAPES = ((1, 5, 1), (3, 7, 3), (2, 0, 5))
#: encoder text lengths (T5) of the trace and of the validation batches 1 and 3
_ENCODER_LENGTHS = {2: 7, 1: 5, 3: 9}
_SEED = 0


@dataclass(frozen=True)
class GenerationLayout:
    """What config.json says of a model's generation: its architecture and its encoder's inputs."""

    architecture: str  #: decoder-only | encoder-decoder
    model_type: str
    encoder_inputs: tuple[str, ...] = ()  #: encoder-decoder: the encoder graph's inputs

    def as_json(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "model_type": self.model_type,
            "encoder_inputs": list(self.encoder_inputs),
        }


@dataclass(frozen=True)
class WithPastExport:
    """Validated with-past graph(s) of one model and how they were made."""

    folder: Path  #: the cache entry holding the graph(s)
    architecture: str  #: decoder-only | encoder-decoder
    model_type: str
    decoder_path: Path  #: the decoder graph (decoder-only: the one graph)
    encoder_path: Path | None  #: encoder-decoder: the encoder graph; None for decoder-only
    #: graph inputs and outputs by graph ("decoder", "encoder"), in graph order
    graph_inputs: Mapping[str, tuple[str, ...]]
    graph_outputs: Mapping[str, tuple[str, ...]]
    encoder_inputs: tuple[str, ...]  #: the model inputs the encoder graph takes (empty: decoder-only)
    layers: int  #: decoder layers, each with a self-attention key and value in the past
    kv_heads: int  #: key/value heads of the self-attention past
    head_dim: int
    exporter: str
    opset: int
    seconds: float  #: wall time of the build that made the entry (load, probe, export, validation)
    export_seconds: float  #: of that, torch.onnx.export alone
    file_size: int  #: bytes of every file of the entry
    max_abs_diff: float  #: onnxruntime vs PyTorch, over every validation shape and output
    max_rel_diff: float
    validation_shapes: tuple[str, ...]  #: what was validated, one line per graph and shape
    source: str = "pytorch_conversion"  #: pytorch_conversion (built by this call) | cache

    @property
    def path(self) -> Path:
        """The graph that decodes (its folder holds the entry's manifest and any other graph)."""
        return self.decoder_path

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.decoder_path,) if self.encoder_path is None else (self.encoder_path, self.decoder_path)

    @property
    def converted_now(self) -> bool:
        return self.source == "pytorch_conversion"

    @property
    def status(self) -> str:
        return "converted" if self.converted_now else "cached"


def generation_layout(config: Mapping[str, Any], where: str = "config.json") -> GenerationLayout:
    """The model's generation architecture from config.json alone; GenerationUnsupportedError, naming
    the model_type and why, for models without a with-past export here."""
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise GenerationUnsupportedError(f"{where}: no model_type to choose a generation export by")
    if model_type in ENCODER_INPUTS:
        return GenerationLayout(ENCODER_DECODER, model_type, ENCODER_INPUTS[model_type])
    covered = f"generation covers causal language models, {' and '.join(sorted(ENCODER_INPUTS))}"
    if config.get("is_encoder_decoder"):
        raise GenerationUnsupportedError(
            f"{where}: model_type {model_type!r} is an encoder-decoder without a with-past export "
            f"(its encoder's inputs and cross-attention are not described here); {covered}"
        )
    multimodal = [key for key in _MULTIMODAL_KEYS if key in config]
    if multimodal:
        raise GenerationUnsupportedError(
            f"{where}: model_type {model_type!r} is a multimodal model (config.json has {multimodal[0]}): "
            "its prompts carry image or sound features, which the with-past decoder graph does not take; "
            f"{covered}"
        )
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    architectures = config.get("architectures") or [None]
    architecture = architectures[0]
    expected = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    if expected is None:
        raise GenerationUnsupportedError(
            f"{where}: model_type {model_type!r} is not a causal language model transformers knows "
            f"(AutoModelForCausalLM has no such model_type); {covered}"
        )
    names = {expected} if isinstance(expected, str) else set(expected)
    if architecture not in names:
        raise GenerationUnsupportedError(
            f"{where}: model_type {model_type!r} with architecture {architecture!r} is not its causal "
            f"language model ({', '.join(sorted(names))}); {covered}"
        )
    return GenerationLayout(DECODER_ONLY, model_type)


def past_input(output_name: str) -> str:
    """The graph input an output feeds at the next step (or, from the encoder, at every step):
    present.{i}... -> past_key_values.{i}...; encoder_hidden_states keeps its name."""
    return (
        "past_key_values." + output_name.removeprefix("present.")
        if output_name.startswith("present.")
        else output_name
    )


def self_past_names(layout: GenerationLayout, layers: int) -> tuple[str, ...]:
    """The decoder's self-attention past inputs, key then value per layer."""
    part = "" if layout.architecture == DECODER_ONLY else ".decoder"
    return tuple(f"past_key_values.{i}{part}.{kv}" for i in range(layers) for kv in ("key", "value"))


def export_with_past(
    model_dir: str | Path,
    cache_root: str | Path,
    *,
    tolerances: Tolerances | None = None,
    model_id: str | None = None,
    full_check: bool = False,
    opset: int = DEFAULT_OPSET,
) -> WithPastExport:
    """The validated with-past graph(s) of the model in `model_dir`, from the cache or exported now.

    The cache key covers the model files' content, the layout, the exporter, the opset, the tolerances,
    the builder's version and the versions of torch, transformers, onnx and onnxscript.
    GenerationUnsupportedError (before anything is loaded) for models without a with-past export.
    """
    model_dir, cache_root = Path(model_dir), Path(cache_root)
    config = read_config(model_dir)
    layout = generation_layout(config, str(model_dir / "config.json"))
    tol = tolerances or Tolerances()
    key = content_key(
        BUILDER_VERSION,
        model_content_hash(model_dir, cache_root, full=full_check),
        layout.as_json(),
        EXPORTER,
        opset,
        [tol.atol, tol.rtol],
        library_versions(),
    )
    name = f"{layout.model_type}-{key}"

    def build(staging: Path) -> dict[str, Any]:
        record = _build(model_dir, staging, config, layout, tol, opset)
        record.update(model_id=model_id or str(model_dir), model_dir=str(model_dir), cache_key=key)
        return record

    entry = build_once(cache_root, KIND, name, build, lock_timeout=LOCK_TIMEOUT_S, full_check=full_check)
    return with_past_of(entry.path, entry.manifest, "pytorch_conversion" if entry.built else "cache")


def with_past_of(folder: Path, record: Mapping[str, Any], source: str) -> WithPastExport:
    """The export an entry's manifest describes."""
    graphs = record["graphs"]
    return WithPastExport(
        folder=folder,
        architecture=record["architecture"],
        model_type=record["model_type"],
        decoder_path=folder / graphs["decoder"]["file"],
        encoder_path=folder / graphs["encoder"]["file"] if "encoder" in graphs else None,
        graph_inputs={name: tuple(graph["inputs"]) for name, graph in graphs.items()},
        graph_outputs={name: tuple(graph["outputs"]) for name, graph in graphs.items()},
        encoder_inputs=tuple(record["encoder_inputs"]),
        layers=int(record["layers"]),
        kv_heads=int(record["kv_heads"]),
        head_dim=int(record["head_dim"]),
        exporter=record["exporter"],
        opset=int(record["opset"]),
        seconds=float(record["seconds"]),
        export_seconds=float(record["export_seconds"]),
        file_size=files_size(record),
        max_abs_diff=float(record["max_abs_diff"]),
        max_rel_diff=float(record["max_rel_diff"]),
        validation_shapes=tuple(record["validation_shapes"]),
        source=source,
    )


@dataclass(frozen=True)
class _Graph:
    """One graph to export: the wrapper module, its names, axes, trace arguments and validation cases."""

    key: str  #: decoder | encoder
    file: str
    module: Any
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    axes: Mapping[str, Mapping[int, str]]
    trace: tuple[Any, ...]
    #: (what, arguments in `inputs` order) per validation shape
    cases: tuple[tuple[str, tuple[Any, ...]], ...]


def _build(
    model_dir: Path,
    out: Path,
    config: Mapping[str, Any],
    layout: GenerationLayout,
    tolerances: Tolerances,
    opset: int,
) -> dict[str, Any]:
    """Export and validate the graph(s) into `out`; returns the entry's manifest fields."""
    import torch
    import transformers

    start = time.perf_counter()
    transformers.logging.disable_progress_bar()
    model = model_class(model_dir, config).from_pretrained(model_dir, dtype=torch.float32).eval()
    where = str(model_dir)
    if layout.architecture == DECODER_ONLY:
        graphs, cache = _decoder_only_graphs(model, layout, where)
    else:
        graphs, cache = _encoder_decoder_graphs(model, layout, where)
    layers, kv_heads, head_dim = cache
    export_seconds = 0.0
    max_abs = max_rel = 0.0
    validated: list[str] = []
    #: the inputs each graph kept: the export drops those the model does not read (Whisper's decoder
    #: reads neither encoder_attention_mask nor encoder_hidden_states once its cross-attention is cached)
    kept: dict[str, list[str]] = {}
    for graph in graphs:
        path = out / graph.file
        begun = time.perf_counter()
        _export(graph, path, opset)
        export_seconds += time.perf_counter() - begun
        declared, results = _validate(graph, path, tolerances, where)
        kept[graph.key] = [name for name in graph.inputs if name in declared]
        for what, abs_diff, rel_diff in results:
            max_abs, max_rel = max(max_abs, abs_diff), max(max_rel, rel_diff)
            validated.append(what)
    return {
        "source": "pytorch_conversion",
        "architecture": layout.architecture,
        "model_type": layout.model_type,
        "encoder_inputs": list(layout.encoder_inputs),
        "graphs": {
            g.key: {"file": g.file, "inputs": kept[g.key], "outputs": list(g.outputs)} for g in graphs
        },
        "layers": layers,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "exporter": EXPORTER,
        "opset": opset,
        "seconds": time.perf_counter() - start,
        "export_seconds": export_seconds,
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "atol": tolerances.atol,
        "rtol": tolerances.rtol,
        "trace_shape": list(TRACE_SHAPE),
        "validation_shapes": validated,
        "versions": {**library_versions(), "python": platform.python_version()},
    }


def _export(graph: _Graph, path: Path, opset: int) -> None:
    import torch

    # Tracer warnings are expected on HF models; validation at other shapes decides if the graph is right.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph.module,
            graph.trace,
            str(path),
            input_names=list(graph.inputs),
            output_names=list(graph.outputs),
            dynamic_axes={name: dict(axes) for name, axes in graph.axes.items()},
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    if not path.is_file():
        raise ModelConversionError(f"the {EXPORTER} exporter wrote no {path.name}")


def _validate(
    graph: _Graph, path: Path, tolerances: Tolerances, where: str
) -> tuple[set[str], list[tuple[str, float, float]]]:
    """Run every validation case in onnxruntime and PyTorch: the graph's inputs, and (what, max abs,
    max rel) per case."""
    import numpy as np
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    declared = {i.name for i in session.get_inputs()}
    found: list[tuple[str, float, float]] = []
    for what, args in graph.cases:
        with torch.no_grad():
            expected = dict(zip(graph.outputs, (t.float().numpy() for t in graph.module(*args)), strict=True))
        feeds = {
            n: np.ascontiguousarray(a.numpy())
            for n, a in zip(graph.inputs, args, strict=True)
            if n in declared
        }
        try:
            actual = dict(zip(graph.outputs, session.run(list(graph.outputs), feeds), strict=True))
        except Exception as exc:  # an axis the trace fixed: the graph does not run at this shape
            raise ModelConversionError(
                f"{where}: with-past {graph.file} does not run in onnxruntime at {what}: "
                f"{type(exc).__name__}: {str(exc)[:400]}"
            ) from exc
        worst = (0.0, 0.0)
        for name in graph.outputs:
            agreement = compare_outputs(
                {name: expected[name]}, {name: actual[name]}, tolerances.atol, tolerances.rtol
            )
            if not agreement.ok:
                raise ModelConversionError(
                    f"{where}: with-past {graph.file} differs from PyTorch at {what}, output {name!r}: "
                    f"{agreement.describe(tolerances.atol, tolerances.rtol)}"
                )
            worst = (max(worst[0], agreement.max_abs_diff), max(worst[1], agreement.max_rel_diff))
        found.append((f"{graph.file} {what}", *worst))
    return declared, found


def _filled_cache(keys_values: Sequence[tuple[Any, Any]]) -> Any:
    """A DynamicCache whose layers hold these keys and values, set directly (not through `update`, whose
    concatenation onto an empty tensor traces into a one-input Concat OpenVINO rejects at past 0)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache()
    layers = []
    for keys, values in keys_values:
        layer = DynamicLayer()
        layer.keys, layer.values, layer.device = keys, values, keys.device
        layer.is_initialized = True
        layers.append(layer)
    cache.layers = layers
    return cache


def _plain_layers(cache: Any, model_type: str, where: str) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a cache PyTorch filled; GenerationUnsupportedError for a cache of
    another kind (sliding window, quantized, linear attention: the graph would not hold what it does)."""
    from transformers.cache_utils import DynamicLayer

    layers = list(getattr(cache, "layers", ()))
    odd = sorted({type(layer).__name__ for layer in layers if type(layer) is not DynamicLayer})
    if not layers or odd or any(layer.keys is None or layer.keys.dim() != 4 for layer in layers):
        raise GenerationUnsupportedError(
            f"{where}: model_type {model_type!r} keeps a {type(cache).__name__} of "
            f"{', '.join(odd) or 'layers without 4-D keys'}; the with-past export covers plain "
            "DynamicLayer caches (keys and values [batch, heads, sequence, head_dim])"
        )
    shape = layers[0].keys.shape
    return len(layers), int(shape[1]), int(shape[3])


def _padded_mask(batch: int, length: int, left: bool) -> Any:
    """An attention mask with row 0 padded by 2 (on the left or right), the other rows full."""
    import torch

    mask = torch.ones(batch, length, dtype=torch.long)
    if length > 3:
        if left:
            mask[0, :2] = 0
        else:
            mask[0, -2:] = 0
    return mask


def _decoder_only_graphs(
    model: Any, layout: GenerationLayout, where: str
) -> tuple[list[_Graph], tuple[int, int, int]]:
    import inspect

    import torch

    generator = torch.Generator().manual_seed(_SEED)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    probe_ids = torch.randint(0, vocab, (1, 3), generator=generator)
    with torch.no_grad():
        probe = model(input_ids=probe_ids, attention_mask=torch.ones_like(probe_ids), use_cache=True)
    layers, kv_heads, head_dim = _plain_layers(probe.cache, layout.model_type, where)
    keep_last = (
        {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    )

    class DecoderWithPast(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, *past: Any) -> Any:
            cache = _filled_cache([(past[2 * i], past[2 * i + 1]) for i in range(layers)])
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=cache,
                use_cache=True,
                **keep_last,
            )
            presents = [t for layer in out.cache.layers for t in (layer.keys, layer.values)]
            return (out.logits[:, -1, :], *presents)

    past = self_past_names(layout, layers)
    presents = tuple(name.replace("past_key_values.", "present.", 1) for name in past)

    def arguments(batch: int, past_length: int, new: int) -> tuple[Any, ...]:
        mask = _padded_mask(batch, past_length + new, left=True)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)[:, -new:]
        ids = torch.randint(0, vocab, (batch, new), generator=generator)
        kv = [torch.randn(batch, kv_heads, past_length, head_dim, generator=generator) for _ in past]
        return (ids, mask, positions, *kv)

    axes: dict[str, Mapping[int, str]] = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total_sequence"},
        "position_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch"},
        **{name: {0: "batch", 2: "past_sequence"} for name in past},
        **{name: {0: "batch", 2: "total_sequence"} for name in presents},
    }
    graph = _Graph(
        key="decoder",
        file=DECODER_FILE,
        module=DecoderWithPast(model).eval(),  # eval: the legacy export would trace dropout back in
        inputs=("input_ids", "attention_mask", "position_ids", *past),
        outputs=("logits", *presents),
        axes=axes,
        trace=arguments(*TRACE_SHAPE),
        cases=tuple((f"batch {b}, past {p}, {n} new", arguments(b, p, n)) for b, p, n in VALIDATION_SHAPES),
    )
    return [graph], (layers, kv_heads, head_dim)


def _encoder_decoder_graphs(
    model: Any, layout: GenerationLayout, where: str
) -> tuple[list[_Graph], tuple[int, int, int]]:
    import torch
    from transformers import DynamicCache, EncoderDecoderCache

    generator = torch.Generator().manual_seed(_SEED)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    text_encoder = "input_ids" in layout.encoder_inputs
    encoder_mask = "attention_mask" in layout.encoder_inputs

    class EncoderWithCrossCache(torch.nn.Module):
        """The encoder, then the cross-attention keys and values of every decoder layer, made by one
        decoder pass of a dummy token (of which the export keeps only the key and value projections)."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            named = dict(zip(layout.encoder_inputs, inputs, strict=True))
            hidden = self.model.get_encoder()(**named).last_hidden_state
            start = torch.zeros((hidden.shape[0], 1), dtype=torch.long)
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            out = self.model(
                encoder_outputs=(hidden,),
                attention_mask=named.get("attention_mask"),
                decoder_input_ids=start,
                cache=cache,
                use_cache=True,
            )
            cross = [
                t for layer in out.cache.cross_attention_cache.layers for t in (layer.keys, layer.values)
            ]
            return (hidden, *cross)

    encoder = EncoderWithCrossCache(model).eval()

    def encoder_arguments(batch: int) -> tuple[Any, ...]:
        if text_encoder:
            length = _ENCODER_LENGTHS[batch]
            ids = torch.randint(0, vocab, (batch, length), generator=generator)
            return (ids, _padded_mask(batch, length, left=False)) if encoder_mask else (ids,)
        config = model.config
        frames = 2 * int(config.max_source_positions)  # Whisper's encoder takes exactly this many frames
        return (torch.randn(batch, int(config.num_mel_bins), frames, generator=generator),)

    encoded = {}
    with torch.no_grad():
        for batch in (TRACE_SHAPE[0], *(b for b, _, _ in VALIDATION_SHAPES)):
            if batch not in encoded:
                arguments = encoder_arguments(batch)
                encoded[batch] = (arguments, encoder(*arguments))
        probe_hidden = encoded[1][1][0]
        probe_ids = torch.randint(0, vocab, (1, 3), generator=generator)
        probe = model(
            encoder_outputs=(probe_hidden,),
            attention_mask=encoded[1][0][1] if encoder_mask else None,
            decoder_input_ids=probe_ids,
            cache=EncoderDecoderCache(DynamicCache(), DynamicCache()),
            use_cache=True,
        )
    if not isinstance(probe.cache, EncoderDecoderCache):
        raise GenerationUnsupportedError(
            f"{where}: model_type {layout.model_type!r} returns a {type(probe.cache).__name__}, "
            "not an EncoderDecoderCache of self- and cross-attention"
        )
    layers, kv_heads, head_dim = _plain_layers(probe.cache.self_attention_cache, layout.model_type, where)
    _plain_layers(probe.cache.cross_attention_cache, layout.model_type, where)

    class DecoderWithPast(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, decoder_input_ids: Any, encoder_attention_mask: Any, encoder_hidden_states: Any, *past: Any
        ) -> Any:
            own = _filled_cache([(past[2 * i], past[2 * i + 1]) for i in range(layers)])
            cross = _filled_cache(
                [(past[2 * (layers + i)], past[2 * (layers + i) + 1]) for i in range(layers)]
            )
            # Both filled: the cross-attention reads its keys and values from the cache (is_updated).
            out = self.model(
                encoder_outputs=(encoder_hidden_states,),
                attention_mask=encoder_attention_mask if encoder_mask else None,
                decoder_input_ids=decoder_input_ids,
                cache=EncoderDecoderCache(own, cross),
                use_cache=True,
            )
            presents = [
                t for layer in out.cache.self_attention_cache.layers for t in (layer.keys, layer.values)
            ]
            return (out.logits[:, -1, :], *presents)

    own_past = self_past_names(layout, layers)
    cross_past = tuple(f"past_key_values.{i}.encoder.{kv}" for i in range(layers) for kv in ("key", "value"))
    own_present = tuple(name.replace("past_key_values.", "present.", 1) for name in own_past)
    cross_present = tuple(name.replace("past_key_values.", "present.", 1) for name in cross_past)

    def decoder_arguments(batch: int, past_length: int, new: int) -> tuple[Any, ...]:
        arguments, outputs = encoded[batch]
        hidden, cross = outputs[0], outputs[1:]
        mask = arguments[1] if encoder_mask else torch.ones(hidden.shape[:2], dtype=torch.long)
        ids = torch.randint(0, vocab, (batch, new), generator=generator)
        kv = [torch.randn(batch, kv_heads, past_length, head_dim, generator=generator) for _ in own_past]
        return (ids, mask, hidden, *kv, *cross)

    encoder_axes: dict[str, Mapping[int, str]] = {
        name: ({0: "batch", 1: "encoder_sequence"} if text_encoder else {0: "batch"})
        for name in layout.encoder_inputs
    }
    encoder_axes["encoder_hidden_states"] = {0: "batch", 1: "encoder_sequence"}
    encoder_axes.update({name: {0: "batch", 2: "encoder_sequence"} for name in cross_present})
    decoder_axes: dict[str, Mapping[int, str]] = {
        "decoder_input_ids": {0: "batch", 1: "sequence"},
        "encoder_attention_mask": {0: "batch", 1: "encoder_sequence"},
        "encoder_hidden_states": {0: "batch", 1: "encoder_sequence"},
        "logits": {0: "batch"},
        **{name: {0: "batch", 2: "past_sequence"} for name in own_past},
        **{name: {0: "batch", 2: "encoder_sequence"} for name in cross_past},
        **{name: {0: "batch", 2: "total_sequence"} for name in own_present},
    }
    encoder_graph = _Graph(
        key="encoder",
        file=ENCODER_FILE,
        module=encoder,
        inputs=layout.encoder_inputs,
        outputs=("encoder_hidden_states", *cross_present),
        axes=encoder_axes,
        trace=encoded[TRACE_SHAPE[0]][0],
        cases=tuple((f"batch {b}", encoded[b][0]) for b in (1, 3)),
    )
    decoder_graph = _Graph(
        key="decoder",
        file=DECODER_FILE,
        module=DecoderWithPast(model).eval(),
        inputs=(
            "decoder_input_ids",
            "encoder_attention_mask",
            "encoder_hidden_states",
            *own_past,
            *cross_past,
        ),
        outputs=("logits", *own_present),
        axes=decoder_axes,
        trace=decoder_arguments(*TRACE_SHAPE),
        cases=tuple(
            (f"batch {b}, past {p}, {n} new", decoder_arguments(b, p, n)) for b, p, n in VALIDATION_SHAPES
        ),
    )
    return [encoder_graph, decoder_graph], (layers, kv_heads, head_dim)
