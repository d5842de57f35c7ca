"""Convert a transformers model's weights to a Parquet file that proves itself before it is published.

Everything is written into a hidden staging folder next to the output, validated there, and only
then renamed into place, so an output folder either holds a whole validated conversion or nothing
from this run. Layout: `format`; writing: `write`; reading: `load`; checks:
`validate`; models: `source_model`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

from pytest_hfmodels.convert.parquet.config import MODEL_TYPES, ConversionConfig, ConversionResult
from pytest_hfmodels.convert.parquet.format import FORMAT_VERSION, METADATA_FILE, TOKENIZER_DIR, WEIGHTS_FILE
from pytest_hfmodels.convert.parquet.load import (
    get_layer,
    iter_parquet_weights,
    iter_pieces,
    load_parquet_weights,
)
from pytest_hfmodels.convert.parquet.source_model import (
    SourceModel,
    load_source,
    run_forward,
    sample_inputs,
    save_tokenizer,
    select_component,
)
from pytest_hfmodels.convert.parquet.validate import (
    OutputCheck,
    TensorCheck,
    check_outputs,
    check_pieces,
    overlapping,
)
from pytest_hfmodels.convert.parquet.write import WrittenWeights, write_weights
from pytest_hfmodels.errors import HFModelsError, ModelConversionError

__all__ = [
    "ConversionConfig",
    "ConversionResult",
    "ModelConverter",
    "get_layer",
    "iter_parquet_weights",
    "load_parquet_weights",
]

CONVERTER = "pytest_hfmodels.convert.parquet.converter"


class ModelConverter:
    """Converts models to Parquet weights files with one `ConversionConfig`."""

    def __init__(self, config: ConversionConfig | None = None) -> None:
        self.config = config if config is not None else ConversionConfig()

    def convert(
        self,
        model_name_or_path: str,
        output_dir: str | os.PathLike[str],
        model_type: str = "auto",
        component: str = "all",
    ) -> ConversionResult:
        """Convert, validate (unless disabled) and publish; failures come back as success=False."""
        started = time.perf_counter()
        output = Path(output_dir)
        details: dict[str, Any] = {}
        try:
            if model_type not in MODEL_TYPES:
                raise ModelConversionError(
                    f"model type {model_type!r} is not one of {', '.join(MODEL_TYPES)}"
                )
            _check_replaceable(output)
            return self._convert(model_name_or_path, output, model_type, component, started, details)
        except HFModelsError as exc:
            return ConversionResult(
                success=False,
                model_name=model_name_or_path,
                output_dir=str(output),
                conversion_time_sec=time.perf_counter() - started,
                validation_passed=False if details.get("validation", {}).get("passed") is False else None,
                error_message=str(exc),
                metadata=_as_json(details),
            )

    def _convert(
        self,
        name: str,
        output: Path,
        model_type: str,
        component: str,
        started: float,
        details: dict[str, Any],
    ) -> ConversionResult:
        config = self.config
        source = load_source(name, model_type)
        selected = select_component(source.model.state_dict(), source.family, component)
        inputs = sample_inputs(source) if config.validate_output else None
        # The reference outputs come first: validation later loads the reloaded weights into this model.
        reference = run_forward(source.model, inputs) if inputs is not None else {}
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
        try:
            parquet_path = staging / WEIGHTS_FILE
            show_progress = config.show_progress if config.show_progress is not None else sys.stderr.isatty()
            written = write_weights(
                selected,
                parquet_path,
                compression=config.compression,
                compression_level=config.compression_level,
                use_float16=config.use_float16,
                max_chunk_bytes=config.chunk_bytes,
                show_progress=show_progress,
            )
            _release_arrow_memory()
            tokenizer = save_tokenizer(name, staging / TOKENIZER_DIR) if config.extract_tokenizer else None
            details.update(self._describe(source, component, written, parquet_path, tokenizer is not None))
            if config.validate_output:
                tensors, outputs = self._validate(source, selected, written, parquet_path, inputs, reference)
                problems = tensors.problems + outputs.problems
                details["validation"] = _validation_record(tensors, outputs, not problems, config)
                if problems:
                    raise ModelConversionError(f"{name}: validation failed: " + "; ".join(problems))
            else:
                details["validation"] = {"performed": False, "passed": None}
            (staging / METADATA_FILE).write_text(json.dumps(_as_json(details), indent=2) + "\n")
            _publish(staging, output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already when published
        file_bytes = details["file_bytes"]
        return ConversionResult(
            success=True,
            model_name=name,
            output_dir=str(output),
            parquet_path=str(output / WEIGHTS_FILE),
            tokenizer_path=str(output / TOKENIZER_DIR) if tokenizer is not None else None,
            metadata_path=str(output / METADATA_FILE),
            total_parameters=written.total_parameters,
            file_size_mb=file_bytes / 1e6,
            compression_ratio=details["compression_ratio"],
            conversion_time_sec=time.perf_counter() - started,
            validation_passed=True if config.validate_output else None,
            metadata=_as_json(details),
        )

    def _describe(
        self,
        source: SourceModel,
        component: str,
        written: WrittenWeights,
        parquet_path: Path,
        has_tokenizer: bool,
    ) -> dict[str, Any]:
        config = self.config
        file_bytes = parquet_path.stat().st_size
        return {
            "converter": CONVERTER,
            "converter_version": _package_version(),
            "format_version": FORMAT_VERSION,
            "source": source.name,
            "source_revision": source.revision,
            "model_type": getattr(source.config, "model_type", None),
            "architectures": list(getattr(source.config, "architectures", None) or []),
            "family": source.family,
            "component": component,
            "config": source.config.to_dict(),
            "compression": config.compression,
            "compression_level": config.compression_level if config.compression == "zstd" else None,
            "float16": config.use_float16,
            "total_parameters": written.total_parameters,
            "stored_tensors": sum(1 for t in written.tensors if t.alias_of is None),
            "aliases": written.aliases,
            "source_bytes": written.source_bytes,
            "stored_bytes": written.stored_bytes,
            "file_bytes": file_bytes,
            # compression alone: stored tensor bytes over file bytes; float16 is the next ratio
            "compression_ratio": written.stored_bytes / file_bytes,
            "float16_size_ratio": written.stored_bytes / written.source_bytes
            if written.source_bytes
            else 1.0,
            "parquet_sha256": _sha256(parquet_path),
            "tokenizer": TOKENIZER_DIR if has_tokenizer else None,
            "layers": [t.as_dict() for t in written.tensors],
        }

    def _validate(
        self,
        source: SourceModel,
        selected: dict[str, Any],
        written: WrittenWeights,
        parquet_path: Path,
        inputs: dict[str, Any] | None,
        reference: dict[str, Any],
    ) -> tuple[TensorCheck, OutputCheck]:
        config = self.config
        stored_dtypes = {t.name: t.dtype for t in written.tensors}
        # One streaming read, a chunk in memory at a time (a window of a mapped chunk, its pages
        # released as the next comes): each chunk is compared with the untouched original and then
        # copied into it, restoring the model for the output check, so the model is the only full
        # set of weights held. Originals that overlap without being tied would see a restored chunk
        # before their own comparison: those are compared first, restored after.
        restore = inputs is not None
        restore_while_comparing = restore and not overlapping(selected.values())
        try:
            tensors = check_pieces(
                selected,
                iter_pieces(parquet_path, release_as_read=True),
                stored_dtypes,
                max_relative_error=config.float16_max_relative_error,
                floor=config.relative_error_floor,
                restore=restore_while_comparing,
            )
        finally:
            _release_arrow_memory()
        if inputs is None:
            reason = f"no sample input is known for {type(source.model).__name__}"
            return tensors, OutputCheck(False, skipped_reason=reason)
        if tensors.problems:
            return tensors, OutputCheck(False, skipped_reason="tensors already differ")
        if not restore_while_comparing:
            pieces = iter_pieces(parquet_path, release_as_read=True)
            check_pieces(
                selected, pieces, stored_dtypes, max_relative_error=float("inf"),
                floor=config.relative_error_floor, restore=True,
            )  # fmt: skip
            _release_arrow_memory()
        tolerance = config.output_tolerance_for(tensors.float16_tensors > 0)
        return tensors, check_outputs(source, reference, inputs, tolerance)


def _validation_record(
    tensors: TensorCheck, outputs: OutputCheck, passed: bool, config: ConversionConfig
) -> dict[str, Any]:
    return {
        "performed": True,
        "passed": passed,
        "exact_tensors": tensors.exact_tensors,
        "float16_tensors": tensors.float16_tensors,
        "max_relative_error": tensors.max_relative_error,
        "max_relative_error_tensor": tensors.worst_tensor,
        "max_relative_error_allowed": config.float16_max_relative_error,
        "relative_error_floor": config.relative_error_floor,
        "tensor_problems": list(tensors.problems),
        "outputs": outputs.as_dict(),
    }


def _as_json(details: dict[str, Any]) -> dict[str, Any]:
    # What metadata.json holds, so a result and the file (and from_json) agree: tuples become
    # lists, and values JSON lacks (torch dtypes in a config) become their names.
    plain: dict[str, Any] = json.loads(json.dumps(details, default=str))
    return plain


def _check_replaceable(output: Path) -> None:
    """Refuse, before any work, to replace a folder that is not an earlier conversion."""
    if output.exists() and not output.is_dir():
        raise ModelConversionError(f"{output}: exists and is not a folder")
    if output.is_dir() and any(output.iterdir()):
        try:
            previous = json.loads((output / METADATA_FILE).read_text())
        except (OSError, ValueError):
            previous = None
        if not isinstance(previous, dict) or previous.get("converter") != CONVERTER:
            raise ModelConversionError(
                f"{output}: not empty and not an earlier Parquet conversion; not replacing it"
            )


def _publish(staging: Path, output: Path) -> None:
    # rename() is atomic within a file system; the staging folder lives next to the output for that.
    if not output.exists():
        staging.rename(output)
        return
    retired = output.with_name(f".{output.name}.old-{uuid.uuid4().hex[:8]}")
    output.rename(retired)
    staging.rename(output)
    shutil.rmtree(retired, ignore_errors=True)


def _release_arrow_memory() -> None:
    # Arrow's allocator keeps freed chunks for reuse; torch cannot reuse them, so between the phases
    # that use Arrow they go back to the system rather than add to the peak of the next phase.
    pa.default_memory_pool().release_unused()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_version() -> str:
    try:
        return package_metadata.version("pytest-hfmodels")
    except package_metadata.PackageNotFoundError:
        return "unknown"
