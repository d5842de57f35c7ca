"""Building one conversion into a staging folder: export, validate at another shape, record.

The preferred exporter runs first; if it raises or its file does not validate, the fallback runs.
When neither gives a valid file, `ModelConversionError` names each attempt's cause (with the
max absolute and relative difference for a mismatch) and the staging folder is discarded.
"""

from __future__ import annotations

import platform
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_hfmodels.convert.onnx.compare import compare_outputs
from pytest_hfmodels.convert.onnx.export import export_file, output_axes, run_onnxruntime, shapes_of
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
) -> dict[str, Any]:
    """Write a validated model.onnx into `out` and return its conversion record."""
    start = time.perf_counter()
    failures: list[str] = []
    last_error: BaseException | None = None
    with steps(2 + 2 * len(exporters), progress, f"ONNX {model_dir.name}") as bar:
        bar.set_postfix_str("loading PyTorch model")
        reference = load_reference(model_dir, spec, read_config(model_dir))
        export_in, export_out = reference.export_sample
        validate_in = reference.inputs(spec.validate_shape)
        expected = reference.run(validate_in)
        axes = output_axes(reference.spec, [(export_in, export_out), (validate_in, expected)])
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
            where = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in shapes_of(validate_in).items())
            try:
                actual = run_onnxruntime(path, validate_in)
            except Exception as exc:  # typically a shape the export baked in: an axis is not dynamic
                failures.append(
                    f"{exporter} export does not run in onnxruntime at the validation shape "
                    f"({where}): {_cause(exc)}"
                )
                last_error = exc
                bar.update(1)
                continue
            bar.update(1)
            agreement = compare_outputs(expected, actual, tolerances.atol, tolerances.rtol)
            if not agreement.ok:
                failures.append(
                    f"{exporter} export differs from PyTorch at the validation shape ({where}): "
                    f"{agreement.describe(tolerances.atol, tolerances.rtol)}"
                )
                continue
            return {
                "source": "pytorch_conversion",
                "exporter": exporter,
                "opset": opset,
                "seconds": time.perf_counter() - start,
                "export_seconds": export_seconds,
                # the cache's manifest lists each file with its size and sha256
                "external_data": sum(1 for p in out.iterdir() if p.is_file()) > 1,
                "max_abs_diff": agreement.max_abs_diff,
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
