"""What a validated, cached ONNX conversion costs over the bare minimum, and what a cache hit costs.

For each model, in one process, alternating, `--rounds` times each (medians printed):
  bare:   from_pretrained + torch.onnx.export(dynamo=False) + one onnxruntime run at the export shape
  cold:   export_onnx into an empty cache (load, export, onnxruntime vs PyTorch at another shape,
          hash, record, atomic rename)
  warm:   export_onnx again: content hash of the model files, record read, sha256 of the ONNX file

    .venv/bin/python benchmarks/bench_conversion.py [--rounds 3] [--models gpt2-tiny,all-minilm-l6-v2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="gpt2-tiny,all-minilm-l6-v2")
    options = parser.parse_args()

    from pytest_hfmodels.registry.loader import load_registries
    from pytest_hfmodels.sources.resolve import resolve_model_files

    work = Path(tempfile.mkdtemp(prefix="bench-conversion-"))
    try:
        entries = {e.key: e for e in load_registries([]).entries}
        header = f"{'bare s':>8} {'cold s':>8} {'cold/bare':>9} {'warm s':>8} {'warm/cold':>9}"
        print(f"{'model':18} {header}  exporter")
        for key in options.models.split(","):
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
        print(
            f"medians of {options.rounds} rounds, alternating, one process; cold includes validation at "
            "a second shape, hashing and the atomic rename"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
