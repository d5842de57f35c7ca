"""`hfmodels convert`: a model's weights to a validated Parquet file, or to ONNX."""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_hfmodels.cache.manifest import MANIFEST_FILE
from pytest_hfmodels.cache.store import default_cache_root
from pytest_hfmodels.cli.arguments import (
    folder_path,
    int_in_range,
    model_folder_or_repo_id,
    one_line,
    positive_int,
)
from pytest_hfmodels.convert.parquet.config import ALL_COMPONENTS, COMPRESSIONS, MODEL_TYPES
from pytest_hfmodels.errors import ModelConversionError
from pytest_hfmodels.model_folder import read_config

if TYPE_CHECKING:
    from pytest_hfmodels.convert.onnx.cached import OnnxExport


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a model to Parquet weights or ONNX, validated against the original",
        description="Convert a local model folder or a Hugging Face model id. The output is written to a "
        "staging folder, validated, and only then moved to --output.",
    )
    parser.add_argument(
        "model",
        type=model_folder_or_repo_id,
        help="local model folder, or a model id looked up in the HF cache / Hub",
    )
    parser.add_argument("--to", dest="target", required=True, choices=("parquet", "onnx"))
    parser.add_argument(
        "--output", "-o", required=True, type=folder_path, metavar="DIR", help="output folder"
    )
    parser.add_argument(
        "--type",
        dest="model_type",
        default="auto",
        choices=MODEL_TYPES,
        help="model family; auto reads it from config.json (default: auto)",
    )
    parser.add_argument(
        "--component",
        default="all",
        choices=ALL_COMPONENTS,
        help="vision|text for clip, encoder|decoder for whisper (default: all)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary")
    parser.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="skip reading the output back and comparing it with the original",
    )
    parquet = parser.add_argument_group("parquet")
    parquet.add_argument("--compression", default="zstd", choices=COMPRESSIONS)
    parquet.add_argument(
        "--compression-level",
        type=int_in_range(1, 22),
        default=3,
        metavar="N",
        help="zstd level 1-22 (default: 3)",
    )
    parquet.add_argument(
        "--float16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="store float32 weights as float16 (default: on)",
    )
    parquet.add_argument(
        "--no-tokenizer", dest="tokenizer", action="store_false", help="do not save the tokenizer / processor"
    )
    onnx = parser.add_argument_group("onnx")
    onnx.add_argument("--opset", type=positive_int, default=18, help="ONNX opset (default: 18)")
    onnx.add_argument(
        "--model-type",
        dest="onnx_model_type",
        help="config.json model_type: checked against the config, or naming the export spec when "
        "the config has none",
    )
    onnx.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="where conversions are cached (default: HFMODELS_CACHE, else ~/.cache/pytest-hfmodels)",
    )
    onnx.add_argument(
        "--exporter",
        choices=("legacy", "dynamo"),
        default=None,
        help="torch.onnx exporter (default: the ONNX converter's order, with its fallback)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    local = Path(args.model).expanduser()
    if local.is_dir():
        # One message for a broken config.json, whichever converter would have tripped over it.
        read_config(local, ModelConversionError)
    # The command's process ends when the conversion does: what torch and transformers built
    # (millions of objects) needs no collection at exit, only the memory back (freed all the same).
    atexit.unregister(_freeze_heap)  # once, however often a process runs the command
    atexit.register(_freeze_heap)
    if args.target == "onnx":
        with _no_cyclic_collection():
            return _run_onnx(args)
    return _run_parquet(args)


def _freeze_heap() -> None:
    # Exiting after an ONNX conversion collected for 2.2-2.7 s; frozen, 0.2-0.4 s. nanobind
    # extensions (DuckDB) report every object left uncollected, so not with one loaded.
    if "duckdb" not in sys.modules:
        gc.freeze()


@contextmanager
def _no_cyclic_collection() -> Iterator[None]:
    """Python's cyclic collector off while converting, then on again if it was.

    Importing torch, transformers and a model class makes millions of objects that live until
    exit and almost no cyclic garbage, yet the collector went through all of them again and again:
    1.2 s of a MiniLM conversion. Off, the peak memory grew by 10-20 MB (MiniLM and a 440 MB BERT,
    either exporter). What the conversion left is frozen before the collector is back: all of it
    young, its first pass alone took 0.37 s; frozen, its little garbage is never collected.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _run_onnx(args: argparse.Namespace) -> int:
    """Convert `args.model` to ONNX into `args.output`; print where it went and how it validated."""
    from pytest_hfmodels.cache.admin import clean_if_needed
    from pytest_hfmodels.convert.onnx.cached import conversion_threads, export_onnx
    from pytest_hfmodels.convert.onnx.from_hub import export_spec_for, model_folder

    quiet = bool(getattr(args, "quiet", False))
    if getattr(args, "validate", True) is False and not quiet:
        print(
            "hfmodels convert: note: --no-validate does not apply to --to onnx; ONNX exports are always "
            "validated against PyTorch",
            file=sys.stderr,
        )
    model_dir = model_folder(str(args.model))
    cache_root = getattr(args, "cache_dir", None) or default_cache_root()
    export = export_onnx(
        model_dir,
        cache_root,
        export_spec_for(str(args.model), model_dir, getattr(args, "onnx_model_type", None)),
        opset=getattr(args, "opset", None),
        exporter=getattr(args, "exporter", None),
        model_id=str(args.model),
        progress=not quiet and sys.stderr.isatty(),
        threads=conversion_threads(model_dir),
    )
    written = _copy_out(export, Path(args.output), model_dir)
    clean_if_needed(cache_root)  # as the plugin does at session end: the cache stays under its limit
    if not quiet:
        print(_onnx_summary(export, written))
    return 0


#: files of a model folder that make an ONNX file loadable as a model: config, generation config,
#: tokenizer, processor (not the weights, nor an index of weight files the folder will not have)
_MODEL_FOLDER_PATTERNS = ("*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja")
#: ... nor a cache entry's record of the model folder itself (a built tiny model has one)
_NOT_COPIED = frozenset({"model.safetensors.index.json", "pytorch_model.bin.index.json", MANIFEST_FILE})


def _copy_out(export: OnnxExport, output: Path, model_dir: Path) -> Path:
    """Copy the cached conversion (model, external data, record) into `output`, with the model's
    config, tokenizer and processor files beside it, so the folder loads as a model (as optimum's
    does); each file atomically."""
    output.mkdir(parents=True, exist_ok=True)
    companions = {
        item
        for pattern in _MODEL_FOLDER_PATTERNS
        for item in model_dir.glob(pattern)
        if item.name not in _NOT_COPIED
    }
    for item in sorted({*export.path.parent.iterdir(), *companions}):
        # A Hub snapshot's files are links into its blob store (copied as files); a link inside
        # the cache entry is not the tool's and is left alone.
        if not item.is_file() or (item.is_symlink() and item.parent == export.path.parent):
            continue
        staged = output / f".{item.name}.{os.getpid()}.tmp"
        try:
            shutil.copyfile(item, staged)
            os.replace(staged, output / item.name)
        finally:
            staged.unlink(missing_ok=True)
    return output / export.path.name


def _onnx_summary(export: OnnxExport, written: Path) -> str:
    def shape(shapes: Mapping[str, tuple[int, ...]]) -> str:
        return ", ".join(f"{name} {'x'.join(map(str, dims))}" for name, dims in shapes.items())

    origin = "converted now" if export.source == "pytorch_conversion" else "from the cache"
    return "\n".join(
        (
            f"wrote {written} ({export.file_size / 1e6:.2f} MB, {origin}; "
            f"conversion took {export.seconds:.1f} s)",
            f"  exporter {export.exporter}, opset {export.opset}, spec {export.spec_name}, "
            f"sha256 {export.sha256[:16]}",
            f"  exported at {shape(export.export_shape)}",
            f"  validated in onnxruntime against PyTorch at {shape(export.validation_shape)} and at the "
            f"export shape: max abs diff {export.max_abs_diff:.3g}, max rel diff {export.max_rel_diff:.3g}",
            f"  record: {written.parent / MANIFEST_FILE}",
        )
    )


def _run_parquet(args: argparse.Namespace) -> int:
    from pytest_hfmodels.convert.parquet.config import ConversionConfig
    from pytest_hfmodels.convert.parquet.converter import ModelConverter

    if args.quiet:
        import transformers

        # The CLI owns its process: silencing transformers' own bars and warnings touches no one else.
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    config = ConversionConfig(
        compression=args.compression,
        compression_level=args.compression_level,
        use_float16=args.float16,
        extract_tokenizer=args.tokenizer,
        validate_output=args.validate,
        show_progress=not args.quiet and sys.stderr.isatty(),
    )
    result = ModelConverter(config).convert(
        args.model, args.output, model_type=args.model_type, component=args.component
    )
    if not result.success:
        print(f"hfmodels convert: error: {one_line(result.error_message or 'failed')}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(_summary(result.metadata, result.parquet_path, result.conversion_time_sec))
    return 0


def _summary(metadata: dict[str, Any], parquet_path: str | None, seconds: float) -> str:
    validation = metadata.get("validation", {})
    lines = [
        f"wrote {parquet_path} in {seconds:.1f} s",
        f"  {metadata['stored_tensors']} tensors ({len(metadata['aliases'])} tied aliases), "
        f"{metadata['total_parameters']:,} parameters, {metadata['family']} / {metadata['component']}",
        f"  file {metadata['file_bytes'] / 1e6:.2f} MB; compression {metadata['compression']} "
        f"ratio {metadata['compression_ratio']:.3f}; float16 size ratio {metadata['float16_size_ratio']:.3f}",
    ]
    if not validation.get("performed"):
        lines.append("  not validated (--no-validate)")
        return "\n".join(lines)
    lines.append(
        f"  validated: {validation['exact_tensors']} tensors bit-exact, "
        f"{validation['float16_tensors']} float16 with max relative error "
        f"{validation['max_relative_error']:.2e} (floor {validation['relative_error_floor']:.1e}, "
        f"allowed {validation['max_relative_error_allowed']:.1e})"
    )
    outputs = validation["outputs"]
    if outputs["checked"]:
        lines.append(
            f"  outputs with reloaded weights: max difference {outputs['max_output_error']:.2e} "
            f"of scale (tolerance {outputs['tolerance']:.1e})"
        )
    else:
        lines.append(f"  outputs not compared: {outputs['skipped_reason']}")
    return "\n".join(lines)
