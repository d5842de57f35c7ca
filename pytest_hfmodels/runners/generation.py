"""Greedy generation and its timing, as LLM users measure it: PyTorch's own `generate` with its own cache,
and one greedy loop over the with-past graphs (`convert.onnx.with_past`) that onnxruntime and OpenVINO
share through a `Graph` each.

Every run decodes exactly `new_tokens` tokens per row: the end-of-sequence tokens are blocked, as
`generate(min_new_tokens=N, max_new_tokens=N)` does, so every mode decodes the same amount of work.
Greedy means plain argmax: `generate` is called with its sampling and search off, and with every
logits processor a generation config may switch on that this loop does not apply (repetition penalty,
n-gram bans, forced tokens, ...) set neutral, so that both sides compute the same function. The loop
applies what is left: the end-of-sequence block, `suppress_tokens`, and `begin_suppress_tokens` at the
first new token (Whisper's configs use both).

Timing: `step_ms[0]` is the prompt's prefill with the first new token, from the call's start (an
encoder-decoder's encoder included); each later entry is one decode step, from the previous token to
this one. `sum(step_ms)` is the call's wall time up to its last token. In PyTorch a StoppingCriteria,
called by `generate` after every token, takes the timestamps, so the figures are generate's own.

Decoder-only prompts of a batch are padded on the left, and the loop makes position_ids as `generate`
does: cumsum(attention_mask) - 1 with padded positions 0, then the last position + 1 each step, the mask
growing by a 1 a step. An encoder-decoder's decoder starts from the prompt `generate` starts from
(`decoder_prompt`, taken from a one-token `generate` of the same inputs: T5's decoder_start_token_id,
Whisper's start-of-transcript and task tokens), so no family rule is re-implemented here.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from pytest_hfmodels.errors import GenerationUnsupportedError
from pytest_hfmodels.samples import Preprocessors, generation_prompts, sample_audio

if TYPE_CHECKING:
    from pytest_hfmodels.convert.onnx.with_past import GenerationLayout, WithPastExport

#: generation config fields of logits processors the exported loop does not apply, and the value that
#: switches each off; `generate` gets these wherever a model's config sets another
NEUTRAL_PROCESSORS: Mapping[str, Any] = {
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "sequence_bias": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "exponential_decay_length_penalty": None,
    "guidance_scale": None,
}


#: names of the modules holding learned decoder positions (GPT-2: wpe; Whisper, OPT: embed_positions)
_POSITION_EMBEDDINGS = ("wpe", "embed_positions", "position_embeddings")


@dataclass(frozen=True)
class GenerationRun:
    """What one greedy generation produced and how long each step took."""

    tokens: tuple[tuple[int, ...], ...]  #: per batch row, the new tokens only
    #: step 0: prefill and first token, from the call's start; then one entry per decode step
    step_ms: tuple[float, ...]
    prompt_tokens: int  #: tokens per prompt row, padding included (Whisper: its decoder prompt)
    batch_size: int
    new_tokens: int  #: the tokens per row asked for (a correct run has exactly these)

    @property
    def digest(self) -> str:
        """sha256 (hex) of the generated ids, canonically: the JSON of the rows' token lists, no spaces."""
        rows = [list(row) for row in self.tokens]
        return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()

    @property
    def total_ms(self) -> float:
        return sum(self.step_ms)

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Tokens after the first, over the batch, per second of decoding; None for a single step."""
        decoding = sum(self.step_ms[1:])
        return self.batch_size * (len(self.step_ms) - 1) / (decoding / 1000.0) if decoding > 0 else None


@dataclass(frozen=True)
class GenerationInputs:
    """One generation's prompt, made by the model's own tokenizer or feature extractor."""

    architecture: str  #: decoder-only | encoder-decoder (convert.onnx.with_past)
    #: model inputs by name: numpy arrays (exported modes) or torch tensors on the device (from_pretrained)
    tensors: Mapping[str, Any]
    batch_size: int
    prompt_tokens: int  #: tokens per prompt row, padding included (Whisper: its decoder prompt)
    #: encoder-decoder: per row, the decoder ids `generate` starts from; empty for decoder-only
    decoder_prompt: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class GreedyRules:
    """Token ids the greedy loop never picks, and those it does not pick as the first new token."""

    blocked: tuple[int, ...]  #: end-of-sequence (min_new_tokens = N) and suppress_tokens
    blocked_first: tuple[int, ...] = ()  #: begin_suppress_tokens


def greedy_rules(generation_config: Any) -> GreedyRules:
    """The rules `generate` applies under greedy search with EOS blocked, from a model's generation config."""

    def ids(value: Any) -> tuple[int, ...]:
        if value is None:
            return ()
        return (int(value),) if isinstance(value, int) else tuple(int(v) for v in value)

    blocked = ids(generation_config.eos_token_id) + ids(getattr(generation_config, "suppress_tokens", None))
    first = ids(getattr(generation_config, "begin_suppress_tokens", None))
    return GreedyRules(tuple(sorted(set(blocked))), tuple(sorted(set(first))))


def neutral_overrides(generation_config: Any) -> dict[str, Any]:
    """`generate` arguments switching off the processors a model's generation config enables that the
    exported loop does not apply (NEUTRAL_PROCESSORS)."""
    overrides = {}
    for name, neutral in NEUTRAL_PROCESSORS.items():
        value = getattr(generation_config, name, None)
        if value is not None and value != neutral:
            overrides[name] = neutral
    return overrides


def build_generation_inputs(
    layout: GenerationLayout, pre: Preprocessors, batch_size: int, input_size: int | None
) -> GenerationInputs:
    """Numpy prompts: decoder-only texts left-padded, T5's right-padded (its encoder mask covers it),
    Whisper's sounds (`input_size` seconds, default 1) as log-mel features. `input_size` is tokens for
    text: one text of exactly that many tokens per row; None: the sample prompts, of different lengths.
    An encoder-decoder's decoder prompt is added by `with_decoder_prompt`."""
    from pytest_hfmodels.convert.onnx.with_past import DECODER_ONLY

    if "input_features" in layout.encoder_inputs:
        extractor = pre.feature_extractor
        if extractor is None:
            raise GenerationUnsupportedError(
                f"model_type {layout.model_type!r}: the model folder has no feature extractor to make "
                "the audio prompt"
            )
        rate = extractor.sampling_rate
        clips = [sample_audio(rate, float(input_size or 1))] * batch_size
        features = extractor(clips, sampling_rate=rate, return_tensors="np")["input_features"]
        return GenerationInputs(
            layout.architecture, {"input_features": features.astype("float32")}, batch_size, 0
        )
    if pre.tokenizer is None:
        raise GenerationUnsupportedError(
            f"model_type {layout.model_type!r}: the model folder has no tokenizer to make the prompt"
        )
    side = "left" if layout.architecture == DECODER_ONLY else "right"
    made = generation_prompts(pre.tokenizer, batch_size, input_size, side)
    tensors = {name: value.astype("int64") for name, value in made.items()}
    return GenerationInputs(layout.architecture, tensors, batch_size, int(tensors["input_ids"].shape[1]))


def with_decoder_prompt(model: Any, inputs: GenerationInputs) -> GenerationInputs:
    """An encoder-decoder's inputs with the decoder prompt `generate` starts from for them (Whisper's
    prompt length is then its prompt_tokens, as it has no text prompt)."""
    clock = _run_generate(model, inputs, 1)
    prompt = clock.prompt
    if "input_features" in inputs.tensors:
        return replace(inputs, decoder_prompt=prompt, prompt_tokens=len(prompt[0]))
    return replace(inputs, decoder_prompt=prompt)


def learned_positions(model: Any) -> int | None:
    """How many positions a model's decoder can take when they come from a learned embedding (GPT-2's
    wpe, Whisper's decoder positions): beyond them generation fails. None for rotary or relative
    positions, which have no such limit."""
    import torch

    limit = getattr(model.config, "max_target_positions", None)  # Whisper-like decoders
    if limit:
        return int(limit)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Embedding) and name.rsplit(".", 1)[-1] in _POSITION_EMBEDDINGS:
            return int(module.num_embeddings)
    return None


def check_positions(limit: int | None, inputs: GenerationInputs, new_tokens: int, model_type: str) -> None:
    """GenerationUnsupportedError when the prompt and the new tokens need more positions than `limit`."""
    prompt = len(inputs.decoder_prompt[0]) if inputs.decoder_prompt else inputs.prompt_tokens
    if limit is not None and prompt + new_tokens > limit:
        raise GenerationUnsupportedError(
            f"model_type {model_type!r}: a prompt of {prompt} tokens and {new_tokens} new tokens need "
            f"{prompt + new_tokens} positions; its learned position embedding holds {limit}"
        )


def pytorch_generate(
    model: Any, inputs: GenerationInputs, new_tokens: int, *, use_cache: bool = True
) -> GenerationRun:
    """transformers' greedy `generate` of exactly `new_tokens` tokens per row, timed per step by generate
    itself; `use_cache=False` recomputes the whole sequence every step."""
    clock = _run_generate(model, inputs, new_tokens, use_cache=use_cache)
    return GenerationRun(
        tokens=tuple(zip(*clock.ids, strict=True))
        if clock.ids
        else tuple(() for _ in range(inputs.batch_size)),
        step_ms=tuple(clock.steps_ms()),
        prompt_tokens=inputs.prompt_tokens,
        batch_size=inputs.batch_size,
        new_tokens=new_tokens,
    )


def _run_generate(model: Any, inputs: GenerationInputs, new_tokens: int, *, use_cache: bool = True) -> Any:
    """Run `generate` under a step clock; returns the clock (timestamps, ids per step, decoder prompt)."""
    start = time.perf_counter()
    import numpy as np
    import torch
    import transformers
    from transformers import StoppingCriteriaList

    config = model.generation_config
    kwargs: dict[str, Any] = {
        "do_sample": False,
        "num_beams": 1,
        "max_new_tokens": new_tokens,
        "min_new_tokens": new_tokens,
        "use_cache": use_cache,
        **neutral_overrides(config),
    }
    if config.pad_token_id is None and config.eos_token_id is not None:  # as generate would, silently
        eos = config.eos_token_id
        kwargs["pad_token_id"] = eos if isinstance(eos, int) else next(iter(eos))
    clock = _step_clock_class()(start)
    tensors = {
        name: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
        for name, value in inputs.tensors.items()
    }
    # generate logs, on every call, that max_new_tokens wins over a config's max_length and the like:
    # what these deliberate arguments do. Errors still show.
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with torch.inference_mode():
            model.generate(**tensors, stopping_criteria=StoppingCriteriaList([clock]), **kwargs)
    finally:
        transformers.logging.set_verbosity(verbosity)
    return clock


@functools.cache
def _step_clock_class() -> Any:
    """The StoppingCriteria that times generate's steps (made once: transformers is imported lazily)."""
    import torch
    from transformers import StoppingCriteria

    class StepClock(StoppingCriteria):  # type: ignore[misc]
        """Called by generate after every new token: records the time and the token, stops nothing."""

        def __init__(self, start: float) -> None:
            self.start = start
            self.times: list[float] = []
            self.ids: list[tuple[int, ...]] = []
            self.prompt: tuple[tuple[int, ...], ...] = ()

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            # tolist() waits for the device: the timestamp is the token's, on CUDA too.
            self.ids.append(tuple(input_ids[:, -1].tolist()))
            self.times.append(time.perf_counter())
            if len(self.ids) == 1:
                self.prompt = tuple(tuple(row) for row in input_ids[:, :-1].tolist())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        def steps_ms(self) -> list[float]:
            marks = [self.start, *self.times]
            return [(later - earlier) * 1000.0 for earlier, later in itertools.pairwise(marks)]

    return StepClock


class Graph(Protocol):
    """One exported graph in a runtime. Values it returns stay the runtime's (an OrtValue, say) so they
    can be fed back without a copy; `array` reads one into numpy."""

    input_names: frozenset[str]

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]: ...

    def array(self, value: Any) -> Any: ...

    def empty(self, shape: tuple[int, ...]) -> Any:
        """A float32 value of this shape (a past of length 0) the runtime takes as an input."""


def greedy_decoder_only(
    graph: Graph,
    inputs: GenerationInputs,
    new_tokens: int,
    rules: GreedyRules,
    export: WithPastExport,
    *,
    use_cache: bool = True,
) -> GenerationRun:
    """Greedy decoding through a decoder-only with-past graph. `use_cache=False` feeds the whole
    sequence every step with an empty past (the recomputing baseline, through the same graph)."""
    import numpy as np

    start = time.perf_counter()
    ids = np.ascontiguousarray(inputs.tensors["input_ids"], dtype=np.int64)
    mask = np.ascontiguousarray(inputs.tensors["attention_mask"], dtype=np.int64)
    batch = ids.shape[0]
    positions = _positions(mask)
    past_names = [name for name in export.graph_inputs["decoder"] if name.startswith("past_key_values.")]
    links = [(name, "present." + name.removeprefix("past_key_values.")) for name in past_names]
    empty_shape = (batch, export.kv_heads, 0, export.head_dim)
    past = {name: graph.empty(empty_shape) for name in past_names}
    feeds_positions = "position_ids" in graph.input_names
    one = np.ones((batch, 1), dtype=np.int64)
    sequence = ids
    chosen = np.empty((new_tokens, batch), dtype=np.int64)
    steps: list[float] = []
    last = start
    for step in range(new_tokens):
        feeds = {"input_ids": ids, "attention_mask": mask, **past}
        if feeds_positions:
            feeds["position_ids"] = positions
        out = graph.run(feeds)
        token = _pick(graph.array(out["logits"]), rules, step)
        chosen[step] = token
        now = time.perf_counter()
        steps.append((now - last) * 1000.0)
        last = now
        mask = np.concatenate([mask, one], axis=1)
        if use_cache:
            past = {name: out[present] for name, present in links}
            ids = token.reshape(batch, 1)
            positions = positions[:, -1:] + 1
        else:
            sequence = np.concatenate([sequence, token.reshape(batch, 1)], axis=1)
            ids, positions = sequence, _positions(mask)
    return _run(chosen, steps, inputs, new_tokens)


def greedy_encoder_decoder(
    encoder: Graph,
    decoder: Graph,
    inputs: GenerationInputs,
    new_tokens: int,
    rules: GreedyRules,
    export: WithPastExport,
) -> GenerationRun:
    """The encoder once, then greedy decoding from the decoder prompt through the with-past decoder, its
    cross-attention keys and values the encoder's."""
    import numpy as np

    from pytest_hfmodels.convert.onnx.with_past import past_input

    start = time.perf_counter()
    encoded = encoder.run({name: inputs.tensors[name] for name in export.graph_inputs["encoder"]})
    fixed = {
        past_input(name): value for name, value in encoded.items() if past_input(name) in decoder.input_names
    }
    if "encoder_attention_mask" in decoder.input_names:
        fixed["encoder_attention_mask"] = np.ascontiguousarray(
            inputs.tensors["attention_mask"], dtype=np.int64
        )
    ids = np.asarray(inputs.decoder_prompt, dtype=np.int64)
    batch = ids.shape[0]
    past_names = [
        name
        for name in export.graph_inputs["decoder"]
        if name.startswith("past_key_values.") and ".decoder." in name
    ]
    links = [(name, "present." + name.removeprefix("past_key_values.")) for name in past_names]
    empty_shape = (batch, export.kv_heads, 0, export.head_dim)
    past = {name: decoder.empty(empty_shape) for name in past_names}
    chosen = np.empty((new_tokens, batch), dtype=np.int64)
    steps: list[float] = []
    last = start
    for step in range(new_tokens):
        out = decoder.run({"decoder_input_ids": ids, **fixed, **past})
        token = _pick(decoder.array(out["logits"]), rules, step)
        chosen[step] = token
        now = time.perf_counter()
        steps.append((now - last) * 1000.0)
        last = now
        past = {name: out[present] for name, present in links}
        ids = token.reshape(batch, 1)
    return _run(chosen, steps, inputs, new_tokens)


def _positions(mask: Any) -> Any:
    """position_ids as generate makes them: cumsum(mask) - 1, padded positions 0."""
    import numpy as np

    positions = np.cumsum(mask, axis=1, dtype=np.int64) - 1
    positions[mask == 0] = 0
    return positions


def _pick(logits: Any, rules: GreedyRules, step: int) -> Any:
    """argmax over the vocabulary of what the rules allow (the first maximum, as torch.argmax)."""
    import numpy as np

    scores = logits if logits.flags.writeable else logits.copy()
    if rules.blocked:
        scores[:, rules.blocked] = -np.inf
    if step == 0 and rules.blocked_first:
        scores[:, rules.blocked_first] = -np.inf
    return np.argmax(scores, axis=-1).astype(np.int64)


def _run(chosen: Any, steps: Sequence[float], inputs: GenerationInputs, new_tokens: int) -> GenerationRun:
    return GenerationRun(
        tokens=tuple(tuple(int(t) for t in row) for row in chosen.T),
        step_ms=tuple(steps),
        prompt_tokens=inputs.prompt_tokens,
        batch_size=inputs.batch_size,
        new_tokens=new_tokens,
    )


def first_difference(expected: GenerationRun, actual: GenerationRun) -> tuple[int, int, int, int] | None:
    """(batch row, step, expected id, actual id) of the first token that differs; None when all agree."""
    for row, (want_row, got_row) in enumerate(zip(expected.tokens, actual.tokens, strict=False)):
        for step, (want, got) in enumerate(zip(want_row, got_row, strict=False)):
            if want != got:
                return row, step, want, got
    return None


def shape_problem(run: GenerationRun, batch_size: int) -> str | None:
    """Why a run is not batch_size rows of exactly `run.new_tokens` tokens, one step time per token."""
    rows = len(run.tokens)
    if rows != batch_size or run.batch_size != batch_size:
        return f"{rows} rows of tokens for a batch of {batch_size}"
    lengths = sorted({len(row) for row in run.tokens})
    if lengths != [run.new_tokens]:
        return f"rows of {', '.join(map(str, lengths))} new tokens, {run.new_tokens} asked for"
    if len(run.step_ms) != run.new_tokens:
        return f"{len(run.step_ms)} step times for {run.new_tokens} tokens"
    return None


class OnnxRuntimeGraph:
    """A graph in an onnxruntime session. With IO binding each step's presents stay OrtValues, bound as
    the next step's past where they are (on a GPU: no copy of the growing cache to the host and back).
    On the CPU plain `run` is the default: its numpy inputs are not copied either, and it measured ~5%
    faster than binding 60 inputs and outputs a step (benchmarks/bench_generation.py, SmolLM2 shape)."""

    def __init__(self, session: Any, io_binding: bool | None = None) -> None:
        """`io_binding` None: on for the CUDA provider, off on the CPU."""
        import onnxruntime

        self.session = session
        self.input_names = frozenset(i.name for i in session.get_inputs())
        self.output_names = [o.name for o in session.get_outputs()]
        provider = session.get_providers()[0]
        if io_binding is None:
            io_binding = provider == "CUDAExecutionProvider"
        self.io_binding = io_binding and provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
        self.device = "cuda" if provider == "CUDAExecutionProvider" else "cpu"
        options = session.get_provider_options().get(provider, {})
        self.device_id = int(options.get("device_id", 0)) if self.device == "cuda" else 0
        self._ort_value = onnxruntime.OrtValue

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        if not self.io_binding:
            arrays = {name: self.array(value) for name, value in feeds.items()}
            return dict(zip(self.output_names, self.session.run(self.output_names, arrays), strict=True))
        binding = self.session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, self._ort_value):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, self.device, self.device_id)
        self.session.run_with_iobinding(binding)
        return dict(zip(self.output_names, binding.get_outputs(), strict=True))

    def array(self, value: Any) -> Any:
        return value.numpy() if isinstance(value, self._ort_value) else value

    def empty(self, shape: tuple[int, ...]) -> Any:
        import numpy as np

        zeros = np.zeros(shape, dtype=np.float32)
        if not self.io_binding:
            return zeros
        return self._ort_value.ortvalue_from_numpy(zeros, self.device, self.device_id)


class OpenVinoGraph:
    """A graph compiled by OpenVINO, fed and read by the ONNX names (an OpenVINO port may carry several
    names, and `get_any_name()` can return an internal one)."""

    def __init__(self, compiled: Any, inputs: Sequence[str], outputs: Sequence[str]) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self._inputs = {name: port for port in compiled.inputs for name in port.get_names() if name in inputs}
        self.input_names = frozenset(self._inputs)
        self._outputs = [
            (name, port) for port in compiled.outputs for name in sorted(port.get_names()) if name in outputs
        ]

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        # Inputs shared (no copy), outputs copied: the request's buffers are rewritten by the next step,
        # while the presents it returned are that step's inputs.
        results = self.request.infer(
            {self._inputs[name]: value for name, value in feeds.items()},
            share_inputs=True,
            share_outputs=False,
        )
        return {name: results[port] for name, port in self._outputs}

    def array(self, value: Any) -> Any:
        return value

    def empty(self, shape: tuple[int, ...]) -> Any:
        import numpy as np

        return np.zeros(shape, dtype=np.float32)
