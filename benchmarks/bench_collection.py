"""Collecting 10,000 generated cases against a plain test parametrized 10,000 times."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# 1250 x 2 modes x 4 batch sizes x one text length = 10,000
ENTRIES, MODES, BATCHES, LENGTHS = 1250, ("pipeline", "from_pretrained"), "1,2,4,8", "128"
REPEATS = 3


def collect(args: list[str], cwd: Path) -> tuple[float, str]:
    times, last = [], ""
    for _ in range(REPEATS):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.perf_counter() - start)
        last = done.stdout.strip().splitlines()[-1]
    return statistics.median(times), last


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registries = root / "regs"
        registries.mkdir()
        models = "".join(
            f"  m{i:05d}:\n    id: org/model-{i}\n    source: hub\n    sets: [small]\n"
            for i in range(ENTRIES)
        )
        (registries / "many.yaml").write_text(
            f"family: many\ntask: fill-mask\nmodality: text\narchitecture: BertForMaskedLM\nmodels:\n{models}"
        )
        (root / "test_plain.py").write_text(
            "import pytest\n\n@pytest.mark.parametrize('i', range(10_000))\ndef test_plain(i):\n    pass\n"
        )
        plain, plain_line = collect(["test_plain.py", "-p", "no:hfmodels"], root)
        generated, gen_line = collect(
            [
                "--hf-registry",
                str(registries),
                "--hf-family",
                "many",
                "--hf-mode",
                ",".join(MODES),
                "--hf-batch-sizes",
                BATCHES,
                "--hf-seq-lengths",
                LENGTHS,
                "--cpu-only",
            ],
            root,
        )
    print(f"{'collection (median of ' + str(REPEATS) + ')':<34}{'seconds':>9}  pytest says")
    print(f"{'plain test, parametrize x10,000':<34}{plain:>9.2f}  {plain_line}")
    print(f"{'generated suite, 10,000 cases':<34}{generated:>9.2f}  {gen_line}")
    print(f"ratio generated / plain: {generated / plain:.2f}")


if __name__ == "__main__":
    main()
