"""PyTorch -> ONNX, validated in onnxruntime against PyTorch at another shape, cached once per machine.

A conversion is built under the cache's file lock in a temporary folder and renamed into
`<cache_root>/onnx/<family>-<key>/` only after it validated, so concurrent callers (xdist workers,
processes) get exactly one conversion and a failed one leaves nothing behind. The key covers the
model files' content, the export spec, the exporter asked for, the opset, the tolerances and the
versions of torch, transformers, onnx and onnxscript.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_hfmodels.cache.manifest import files_size, remembered_sha256
from pytest_hfmodels.cache.store import build_once, content_key
from pytest_hfmodels.convert.onnx.build import ONNX_FILE, convert, library_versions
from pytest_hfmodels.convert.onnx.specs import EXPORTERS, ExportSpec, read_config, spec_for
from pytest_hfmodels.errors import ModelConversionError
from pytest_hfmodels.registry.model import Tolerances

#: bump when the way a conversion is made changes, so old cache entries are not reused
#: (3: validated in onnxruntime at the export shape too, not only at the validation shape)
BUILDER_VERSION = 3
#: one JSON line per conversion actually built, appended under the entry's lock
BUILD_LOG = "conversions.log"
#: weight files whose bytes decide the model's content hash (with config.json)
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
#: how long a caller waits for another process's conversion of the same model
LOCK_TIMEOUT_S = 3600.0
#: weights below this size are converted on one thread (`conversion_threads`)
ONE_THREAD_BELOW_BYTES = 256 * 2**20


@dataclass(frozen=True)
class OnnxExport:
    """A validated ONNX file and how it was made."""

    path: Path  #: model.onnx inside its cache folder (external data, if any, beside it)
    exporter: str  #: legacy | dynamo: the exporter that produced the file
    opset: int
    seconds: float  #: wall time of the conversion that built it (load, export, validate)
    file_size: int  #: bytes of model.onnx and its external data
    sha256: str  #: of model.onnx
    max_abs_diff: float  #: onnxruntime vs PyTorch, the largest at the validation and export shapes
    max_rel_diff: float
    validation_shape: Mapping[str, tuple[int, ...]]  #: input name -> shape it was validated at
    export_shape: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: MappingProxyType({}))
    source: str = "pytorch_conversion"  #: pytorch_conversion (built by this call) | cache
    spec_name: str = ""
    created_at: float | None = None  #: when the conversion was built (Unix time)

    @property
    def converted_now(self) -> bool:
        return self.source == "pytorch_conversion"

    @property
    def status(self) -> str:
        return "converted" if self.source == "pytorch_conversion" else "cached"


def export_onnx(
    model_dir: str | os.PathLike[str],
    cache_root: str | os.PathLike[str],
    spec: ExportSpec | None = None,
    opset: int | None = None,
    exporter: str | None = None,
    *,
    tolerances: Tolerances | None = None,
    model_id: str | None = None,
    progress: bool = False,
    full_check: bool = False,
    threads: int | None = None,
) -> OnnxExport:
    """The validated ONNX export of the model in `model_dir`, from the cache or converted now.

    `exporter` None means the spec's preferred exporter with the other as fallback; naming one
    uses only that one. `opset` None means the spec's (18). `full_check` rehashes every cached
    file before serving it (see `cache.store.build_once`). `threads`: torch's and onnxruntime's
    intra-op threads while converting (None: as they are; see `conversion_threads`).
    """
    model_dir, cache_root = Path(model_dir), Path(cache_root)
    config = read_config(model_dir)
    spec = spec or spec_for(model_dir, config)
    opset = opset or spec.opset
    if exporter is not None and exporter not in EXPORTERS:
        raise ModelConversionError(f"exporter {exporter!r}: not one of {', '.join(EXPORTERS)}")
    order = (exporter,) if exporter else (spec.exporter, spec.fallback)
    tol = tolerances or Tolerances()
    key = content_key(
        BUILDER_VERSION,
        model_content_hash(model_dir, cache_root, full=full_check),
        spec.as_json(),
        exporter or "auto",
        opset,
        [tol.atol, tol.rtol],
        library_versions(),
    )
    name = f"{spec.name}-{key}"

    def build(staging: Path) -> dict[str, Any]:
        record = convert(model_dir, staging, spec, order, opset, tol, progress, threads)
        record.update(model_id=model_id or str(model_dir), model_dir=str(model_dir), cache_key=key)
        _append_build_log(cache_root, name, record)
        return record

    # Waiters hold on while another process converts; large models take many minutes. A damaged
    # conversion is never served: the cache sets it aside under the lock and converts again.
    entry = build_once(cache_root, "onnx", name, build, lock_timeout=LOCK_TIMEOUT_S, full_check=full_check)
    return export_of(entry.path, entry.manifest, "pytorch_conversion" if entry.built else "cache")


def model_content_hash(model_dir: Path, cache_root: Path, *, full: bool = False) -> str:
    """sha256 over config.json and the weight files, names included (their folder's path is not);
    each file's hash remembered in the cache while its size, mtime and inode hold (`full`: rehash)."""
    files = [model_dir / "config.json"]
    for pattern in WEIGHT_PATTERNS:
        files.extend(sorted(model_dir.glob(pattern)))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(remembered_sha256(path, cache_root, full=full).encode())
    return digest.hexdigest()


def conversion_threads(model_dir: Path) -> int | None:
    """Intra-op threads for converting the model in `model_dir`: one below ONE_THREAD_BELOW_BYTES of
    weights, else None (torch's default, every core).

    A conversion runs the model on a few short inputs (the reference at two shapes, the trace).
    For a small model each operation is too short to share out: on a 2-core machine with other
    work, MiniLM's forward took 0.2-0.8 s on 2 threads against 0.03 s on one (OpenMP threads wait
    for a descheduled peer) and a whole conversion ~1 s more. Below the limit one thread costs at
    most a fraction of a second where cores are idle; large models keep every core.
    """
    weights = sum(path.stat().st_size for pattern in WEIGHT_PATTERNS for path in model_dir.glob(pattern))
    return 1 if weights < ONE_THREAD_BELOW_BYTES else None


def export_of(folder: Path, record: Mapping[str, Any], source: str) -> OnnxExport:
    """The export a conversion's manifest describes."""

    def shapes(data: Mapping[str, Any]) -> Mapping[str, tuple[int, ...]]:
        return MappingProxyType({k: tuple(v) for k, v in data.items()})

    return OnnxExport(
        path=folder / ONNX_FILE,
        exporter=record["exporter"],
        opset=int(record["opset"]),
        seconds=float(record["seconds"]),
        file_size=files_size(record),
        sha256=record["files"][ONNX_FILE]["sha256"],
        max_abs_diff=float(record["max_abs_diff"]),
        max_rel_diff=float(record["max_rel_diff"]),
        validation_shape=shapes(record["validation_shape"]),
        export_shape=shapes(record["export_shape"]),
        source=source,
        spec_name=record["spec"]["name"],
        created_at=record.get("created_at"),
    )


def _append_build_log(cache_root: Path, entry: str, record: Mapping[str, Any]) -> None:
    line = json.dumps(
        {
            "entry": entry,
            "pid": os.getpid(),
            "exporter": record["exporter"],
            "seconds": record["seconds"],
            "at": time.time(),
        }
    )
    # One short O_APPEND write per line: concurrent builders of other entries cannot interleave it.
    with (cache_root / "onnx" / BUILD_LOG).open("a", encoding="utf-8") as log:
        log.write(line + "\n")
