"""A repo's own ONNX file, used before converting: found with the Hub gateway (retries, the offline
cache), downloaded with its external data, its graph's inputs and outputs checked against what the
model's export spec makes, and validated against PyTorch as a conversion is (`build.convert`).

Thousands of Hub repos publish `onnx/model.onnx` (optimum's layout) or `model.onnx`; a file that
does not agree with the model's PyTorch weights fails the case as a numerical mismatch naming the
largest difference, the same verdict a bad conversion gets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_hfmodels.convert.onnx.compare import compare_outputs
from pytest_hfmodels.convert.onnx.export import run_onnxruntime, shapes_of
from pytest_hfmodels.errors import ModelConversionError, NumericalMismatchError
from pytest_hfmodels.registry.model import Tolerances

#: names the external data of `x.onnx` takes (torch.onnx, optimum, onnx.save)
_EXTERNAL_DATA_SUFFIXES = ("_data", ".data", "_data.bin")


@dataclass(frozen=True)
class HubOnnx:
    """A repo's ONNX file, downloaded and validated against the model's PyTorch weights."""

    path: Path
    repo_file: str  #: the file's path in the repo
    file_size: int  #: bytes of the file and its external data
    from_cache: bool  #: it was in the HF cache before this run asked for it
    max_abs_diff: float
    max_rel_diff: float
    seconds: float  #: finding, downloading and validating it
    source: str = "huggingface"
    converted_now: bool = False  #: never made by this tool
    created_at: float | None = None  #: a Hub file was never converted


@dataclass(frozen=True)
class FoundOnnx:
    path: Path
    repo_file: str
    from_cache: bool  #: in the HF cache before this call: no request was made for it


def find_hub_onnx(
    client: Any, repo_id: str, revision: str | None, candidates: Sequence[str]
) -> FoundOnnx | None:
    """The first of `candidates` the repo has, downloaded with its external data; None when it has
    none. The HF cache answers first, so a file fetched before is used when the Hub is down; a
    file offline and not cached cannot be known, so it counts as absent (the model is converted)."""
    from pytest_hfmodels.errors import ModelNotCachedError

    for name in candidates:
        cached = client.cached_file(repo_id, name, revision)
        if cached is not None:
            return FoundOnnx(cached, name, from_cache=True)
    for name in candidates:
        try:
            if not client.lookup(repo_id, name, revision).exists:
                continue
        except ModelNotCachedError:
            continue
        path = Path(client.download(repo_id, name, revision))
        for suffix in _EXTERNAL_DATA_SUFFIXES:
            data = f"{name}{suffix}"
            if client.lookup(repo_id, data, revision).exists:
                client.download(repo_id, data, revision)
        return FoundOnnx(path, name, from_cache=False)
    return None


def validated_hub_onnx(
    path: Path,
    repo_file: str,
    reference: Any,
    tolerances: Tolerances,
    *,
    from_cache: bool,
    started: float,
) -> HubOnnx:
    """Check the graph's inputs and outputs against the spec, then run it in onnxruntime at the
    spec's validation shape and compare every shared output with PyTorch's."""
    import onnx

    spec = reference.spec
    where = f"Hub ONNX file {repo_file!r}"
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # a truncated or foreign file: onnx raises DecodeError and others
        raise ModelConversionError(
            f"{where}: not a readable ONNX model: {type(exc).__name__}: {exc}"
        ) from exc
    initialized = {init.name for init in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initialized]
    outputs = [o.name for o in graph.output]
    unknown = [name for name in inputs if name not in spec.inputs]
    if unknown:
        raise ModelConversionError(
            f"{where}: takes inputs {unknown} the {spec.name!r} export spec cannot make (it makes "
            f"{list(spec.inputs)})"
        )
    shared = [name for name in outputs if name in spec.outputs]
    if not shared:
        raise ModelConversionError(
            f"{where}: none of its outputs {outputs} is an output of the PyTorch model ({list(spec.outputs)})"
        )
    validate_in = reference.inputs(spec.validate_shape)
    expected = reference.run(validate_in)
    fed = {name: validate_in[name] for name in inputs}
    try:
        actual = run_onnxruntime(path, fed)
    except Exception as exc:
        shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in shapes_of(fed).items())
        raise ModelConversionError(f"{where}: does not run in onnxruntime at {shapes}: {exc}") from exc
    agreement = compare_outputs(
        {name: expected[name] for name in shared},
        {name: actual[name] for name in shared},
        tolerances.atol,
        tolerances.rtol,
    )
    if not agreement.ok:
        raise NumericalMismatchError(
            f"{where} disagrees with the model's PyTorch weights: "
            f"{agreement.describe(tolerances.atol, tolerances.rtol)}"
        )
    size = sum(p.stat().st_size for p in path.parent.iterdir() if p.name.startswith(path.name))
    return HubOnnx(
        path=path,
        repo_file=repo_file,
        file_size=size,
        from_cache=from_cache,
        max_abs_diff=agreement.max_abs_diff,
        max_rel_diff=agreement.max_rel_diff,
        seconds=time.perf_counter() - started,
    )
