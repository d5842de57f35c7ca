"""What a validated, cached ONNX conversion costs over the bare minimum, and what a cache hit costs.

For each model, in one process, alternating, `--rounds` times each (medians printed):
  bare:   from_pretrained + torch.onnx.export(dynamo=False) + one onnxruntime run at the export shape
  cold:   export_onnx into an empty cache (load, export, onnxruntime vs PyTorch at another shape,
          hash, record, atomic rename)
  warm:   export_onnx again: content hash of the model files, record read, sha256 of the ONNX file

Then, whole processes as a user starts them, alternating, `--rounds` pairs: `hfmodels convert MiniLM
--to onnx` into an empty cache against the reference exporter, optimum-cli, when it is installed in
a side environment (it pins transformers < 4.58, so never in this one):

    python3 -m venv /tmp/optenv
    /tmp/optenv/bin/pip install torch==2.13.0 'optimum-onnx[onnxruntime]'
    OPTIMUM_CLI=/tmp/optenv/bin/optimum-cli .venv/bin/python benchmarks/bench_conversion.py

Without it, against a bare export (load, torch.onnx.export, one onnxruntime run) in its own process.
Each pair is printed with its CPU seconds (user + system): on a machine shared with other work the
wall time of one process varies by seconds, its CPU time much less. The last line is one JSON
object of the figures.

    .venv/bin/python benchmarks/bench_conversion.py [--rounds 3] [--models gpt2-tiny,all-minilm-l6-v2]
    .venv/bin/python benchmarks/bench_conversion.py --process-only --rounds 7   # the pairs alone
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any


def bare_export(model_dir: Path, out: Path) -> float:
    """The least a conversion must do: load, export with the legacy exporter, run once."""
    import onnxruntime
    import torch

    from pytest_hfmodels.convert.onnx.reference import load_reference
    from pytest_hfmodels.convert.onnx.specs import read_config, spec_for

    start = time.perf_counter()
    config = read_config(model_dir)
    reference = load_reference(model_dir, spec_for(model_dir, config), config)
    inputs, _ = reference.export_sample
    spec = reference.spec
    args = tuple(torch.from_numpy(inputs[name]) for name in spec.inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            reference.module,
            args,
            str(out),
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            opset_version=18,
            dynamo=False,
            dynamic_axes={n: dict(a) for n, a in spec.dynamic_axes.items()},
        )
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    session.run(None, inputs)
    return time.perf_counter() - start


def timed_export(model_dir: Path, root: Path) -> tuple[float, Any]:
    from pytest_hfmodels.convert.onnx.cached import export_onnx

    start = time.perf_counter()
    result = export_onnx(model_dir, root)
    return time.perf_counter() - start, result


def process_seconds(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a whole process, start-up and imports included, as a
    user waits for it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def whole_process(model_dir: Path, work: Path, rounds: int) -> dict[str, float | str]:
    """`hfmodels convert` into an empty cache against optimum-cli (or a bare export), alternated."""
    hfmodels = str(Path(sys.executable).parent / "hfmodels")
    optimum = os.environ.get("OPTIMUM_CLI") or shutil.which("optimum-cli")
    reference = "optimum-cli" if optimum else "bare export"
    ours, theirs = [], []
    print(f"\nwhole process, hfmodels convert vs {reference}: wall s (cpu s)")
    for round_ in range(rounds):
        out = work / f"process-{round_}"
        ours.append(
            process_seconds(
                [hfmodels, "convert", str(model_dir), "--to", "onnx", "-o", str(out / "ours"), "-q"],
                {"HFMODELS_CACHE": str(out / "cache")},
            )
        )
        if optimum:
            command = [optimum, "export", "onnx", "--model", str(model_dir)]
            command += ["--task", "feature-extraction", str(out / "optimum")]
        else:
            code = (
                "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
                "import bench_conversion as b; b.bare_export(Path(sys.argv[2]), Path(sys.argv[3]))"
            )
            command = [
                sys.executable,
                "-c",
                code,
                str(Path(__file__).parent),
                str(model_dir),
                str(out / "bare.onnx"),
            ]
        theirs.append(process_seconds(command))
        (mine_s, mine_cpu), (other_s, other_cpu) = ours[-1], theirs[-1]
        print(
            f"  pair {round_ + 1}: {mine_s:6.2f} ({mine_cpu:5.2f})  {other_s:6.2f} ({other_cpu:5.2f})  "
            f"ratio {mine_s / other_s:.2f}"
        )
        shutil.rmtree(out, ignore_errors=True)
    mine, other = (statistics.median(wall for wall, _ in runs) for runs in (ours, theirs))
    mine_cpu, other_cpu = (statistics.median(cpu for _, cpu in runs) for runs in (ours, theirs))
    print(
        f"whole process, {rounds} alternating pairs (medians): hfmodels convert {mine:.2f} s "
        f"({mine_cpu:.2f} cpu), {reference} {other:.2f} s ({other_cpu:.2f} cpu), ratio {mine / other:.2f} "
        f"(cpu {mine_cpu / other_cpu:.2f}; target <= 0.80)"
    )
    return {
        "process_hfmodels_convert_s": mine,
        "process_reference_s": other,
        "process_ratio": mine / other,
        "process_cpu_ratio": mine_cpu / other_cpu,
        "process_reference": reference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="gpt2-tiny,all-minilm-l6-v2")
    parser.add_argument(
        "--process-only", action="store_true", help="only the whole-process pairs, not the in-process table"
    )
    options = parser.parse_args()

    from pytest_hfmodels.registry.loader import load_registries
    from pytest_hfmodels.sources.resolve import resolve_model_files

    work = Path(tempfile.mkdtemp(prefix="bench-conversion-"))
    try:
        entries = {e.key: e for e in load_registries([]).entries}
        figures: dict[str, float | str] = {}
        models = [] if options.process_only else options.models.split(",")
        header = f"{'bare s':>8} {'cold s':>8} {'cold/bare':>9} {'warm s':>8} {'warm/cold':>9}"
        if models:
            print(f"{'model':18} {header}  exporter")
        for key in models:
            model_dir = resolve_model_files(entries[key], work / "models", offline=True).path
            bare_export(model_dir, work / "warm-up.onnx")  # first use of the exporter imports a lot
            bare, cold, warm = [], [], []
            exporter = ""
            for round_ in range(options.rounds):
                bare.append(bare_export(model_dir, work / f"bare-{round_}.onnx"))
                root = work / f"cache-{key}-{round_}"
                seconds, first = timed_export(model_dir, root)
                assert first.source == "pytorch_conversion"
                cold.append(seconds)
                seconds, again = timed_export(model_dir, root)
                assert again.source == "cache" and again.sha256 == first.sha256
                warm.append(seconds)
                exporter = first.exporter
            b, c, w = (statistics.median(v) for v in (bare, cold, warm))
            print(f"{key:18} {b:8.3f} {c:8.3f} {c / b:9.2f} {w:8.4f} {w / c:9.4f}  {exporter}")
            slug = key.replace("-", "_")
            figures.update({f"{slug}_bare_s": b, f"{slug}_cold_s": c, f"{slug}_warm_over_cold": w / c})
        if models:
            print(
                f"medians of {options.rounds} rounds, alternating, one process; cold includes validation "
                "at two shapes, hashing and the atomic rename"
            )
        minilm = resolve_model_files(entries["all-minilm-l6-v2"], work / "models", offline=True).path
        figures.update(whole_process(minilm, work, options.rounds))
        print(json.dumps(figures))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
