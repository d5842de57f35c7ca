"""Building one conversion into a staging folder: export, validate at two shapes, record.

The file is run in one onnxruntime session at the validation shape (another batch and length than
the export's, so an axis the export baked in shows) and at the export shape, and each run is
compared with PyTorch's outputs. The preferred exporter runs first; if it raises or its file does
not validate, the fallback runs. When neither gives a valid file, `ModelConversionError` names each
attempt's cause (with the max absolute and relative difference for a mismatch) and the staging
folder is discarded.
"""

from __future__ import annotations

import functools
import platform
import re
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_hfmodels.convert.onnx.compare import Agreement, compare_outputs
from pytest_hfmodels.convert.onnx.export import (
    export_file,
    onnxruntime_session,
    output_axes,
    run_session,
    shapes_of,
)
from pytest_hfmodels.convert.onnx.reference import load_reference
from pytest_hfmodels.convert.onnx.specs import ExportSpec, read_config
from pytest_hfmodels.errors import ModelConversionError
from pytest_hfmodels.registry.model import Tolerances

ONNX_FILE = "model.onnx"
_MAX_CAUSE_CHARS = 600
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def convert(
    model_dir: Path,
    out: Path,
    spec: ExportSpec,
    exporters: Sequence[str],
    opset: int,
    tolerances: Tolerances,
    progress: bool,
    threads: int | None = None,
) -> dict[str, Any]:
    """Write a validated model.onnx into `out` and return its conversion record.

    `threads`: intra-op threads of torch and onnxruntime for this conversion (None: their defaults);
    torch's setting is restored afterwards.
    """
    start = time.perf_counter()
    failures: list[str] = []
    last_error: BaseException | None = None
    with torch_threads(threads), steps(2 + 2 * len(exporters), progress, f"ONNX {model_dir.name}") as bar:
        bar.set_postfix_str("loading PyTorch model")
        reference = load_reference(model_dir, spec, read_config(model_dir))
        export_in, export_out = reference.export_sample
        validate_in = reference.inputs(spec.validate_shape)
        expected = reference.run(validate_in)
        axes = output_axes(reference.spec, [(export_in, export_out), (validate_in, expected)])
        # The validation shape first: an axis the export baked in fails there, and says so.
        checks = (
            ("the validation shape", validate_in, expected),
            ("the export shape", export_in, export_out),
        )
        bar.update(2)
        for exporter in exporters:
            _empty(out)
            path = out / ONNX_FILE
            bar.set_postfix_str(f"{exporter} export")
            begun = time.perf_counter()
            try:
                export_file(exporter, reference, export_in, axes, path, opset)
            except Exception as exc:  # any exporter failure is a reason to try the fallback
                failures.append(f"{exporter} exporter failed: {_cause(exc)}")
                last_error = exc
                bar.update(2)
                continue
            export_seconds = time.perf_counter() - begun
            bar.update(1)
            bar.set_postfix_str("validating in onnxruntime")
            try:
                agreement = validate_in_onnxruntime(path, checks, tolerances, threads)
            except InvalidExport as problem:
                failures.append(f"{exporter} export {problem}")
                last_error = problem.__cause__ or last_error
                continue
            finally:
                bar.update(1)
            return {
                "source": "pytorch_conversion",
                "exporter": exporter,
                "opset": opset,
                "seconds": time.perf_counter() - start,
                "export_seconds": export_seconds,
                # the cache's manifest lists each file with its size and sha256
                "external_data": sum(1 for p in out.iterdir() if p.is_file()) > 1,
                "max_abs_diff": agreement.max_abs_diff,  # the largest at either shape
                "max_rel_diff": agreement.max_rel_diff,
                "atol": tolerances.atol,
                "rtol": tolerances.rtol,
                "validation_shape": shapes_of(validate_in),
                "export_shape": shapes_of(export_in),
                "output_axes": {k: {str(a): n for a, n in v.items()} for k, v in axes.items()},
                "spec": reference.spec.as_json(),
                "config": {
                    "exporters_tried": list(exporters),
                    "opset": opset,
                    "atol": tolerances.atol,
                    "rtol": tolerances.rtol,
                },
                "failed_attempts": failures,
                "versions": {**library_versions(), "python": platform.python_version()},
                "created_at": time.time(),
            }
    raise ModelConversionError(
        f"{model_dir}: no valid ONNX export (spec {spec.name!r}, opset {opset}): " + " | ".join(failures)
    ) from last_error


class InvalidExport(Exception):
    """Why an exported file is refused (its message follows "<exporter> export ")."""


def validate_in_onnxruntime(
    path: Path,
    checks: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]],
    tolerances: Tolerances,
    threads: int | None,
) -> Agreement:
    """Run the file in one onnxruntime session at each (what, inputs, PyTorch's outputs) and compare;
    the agreement over all of them, or `InvalidExport` at the first that does not run or agree."""
    try:
        session = onnxruntime_session(path, threads=threads)
    except Exception as exc:
        raise InvalidExport(f"does not load in onnxruntime: {_cause(exc)}") from exc
    max_abs = max_rel = 0.0
    for what, inputs, expected in checks:
        where = f"{what} ({', '.join(f'{k} {_dims(v)}' for k, v in shapes_of(inputs).items())})"
        try:
            actual = run_session(session, inputs)
        except Exception as exc:  # typically a shape the export baked in: an axis is not dynamic
            raise InvalidExport(f"does not run in onnxruntime at {where}: {_cause(exc)}") from exc
        agreement = compare_outputs(expected, actual, tolerances.atol, tolerances.rtol)
        if not agreement.ok:
            raise InvalidExport(
                f"differs from PyTorch at {where}: {agreement.describe(tolerances.atol, tolerances.rtol)}"
            )
        max_abs, max_rel = max(max_abs, agreement.max_abs_diff), max(max_rel, agreement.max_rel_diff)
    return Agreement(max_abs, max_rel, ok=True)


def _dims(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `threads` (None: left alone) inside, restored after."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _empty(folder: Path) -> None:
    """Clear the staging folder between attempts: the fallback must not inherit external data."""
    for item in folder.iterdir():
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item)
        else:
            item.unlink()


def _cause(exc: BaseException) -> str:
    message = _ANSI.sub("", str(exc))
    # torch's exporter wraps the real error in pages of advice; its summary names the cause.
    message = message.split("## Exception summary", 1)[-1].strip()
    text = f"{type(exc).__name__}: {message}"
    return text if len(text) <= _MAX_CAUSE_CHARS else text[:_MAX_CAUSE_CHARS] + " [...]"


def library_versions() -> dict[str, str]:
    return dict(_library_versions())


@functools.cache  # metadata lookups, asked for twice per conversion; installs do not change under a process
def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "onnx", "onnxscript"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


@contextmanager
def steps(total: int, show: bool, what: str) -> Iterator[Any]:
    """A tqdm bar of `total` named steps when `show`, else a silent stand-in."""
    if not show:
        yield _Silent()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=what, unit="step", leave=False) as bar:
        yield bar


class _Silent:
    def set_postfix_str(self, text: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass
