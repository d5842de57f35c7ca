"""A results database of three runs of one selection, with real measured timings, for the report tests.

The timings are of pure-Python loops, measured here: the work grows with batch and length (so the
scaling charts have a slope), and in the third run one case does sixty times its work (so it is a
regression however fast this machine is). The gpt2 cases also time a generate loop (a prefill step,
then one step per new token), giving TTFT and TPOT. Memory figures are the bytes of a real array
and the resident-set growth of allocating it; what these tests do not measure is left None.
"""

from __future__ import annotations

import dataclasses
import hashlib
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from pytest_hfmodels.db.environment import RunEnvironment
from pytest_hfmodels.db.store import write_run
from pytest_hfmodels.results import Measurement, ResultRow
from tests import results_helpers

ROUNDS = 5
#: loop iterations per row and token of a forward call
WORK = 1000
#: the case the third run slows down, and by how much: to nearly four times the work of any other
#: case, so it is the run's slowest row (the browser test sorts on it) whatever the timer's noise
SLOWED = ("org/bert", "onnxruntime", 1, 16)
SLOWDOWN = 60
#: the case that passes twice, then fails
BROKEN = ("org/gpt2", "onnxruntime")
NEW_TOKENS = 4
#: what the generate cases say they generated
GENERATED = "Hello world, this is a test of the"
MODES = ("pipeline", "from_pretrained", "onnxruntime")
#: the work of one call in each mode, relative to from_pretrained's: a pipeline also tokenises, and
#: onnxruntime does half of PyTorch's, so the summary has a fastest runtime to name
MODE_WORK = {"pipeline": 1.5, "from_pretrained": 1.0, "onnxruntime": 0.5}
BATCHES = (1, 4)
LENGTHS = (16, 32)
#: (model id, family) of the selection
MODELS = (("org/bert", "bert"), ("org/gpt2", "gpt2"))
COMMITS = ("1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d", "2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e",
           "3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f")  # fmt: skip


@dataclass(frozen=True)
class Timings:
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)


def time_loop(iterations: int, rounds: int = ROUNDS) -> Timings:
    """`sum(range(iterations))` timed `rounds` times after one warm-up call."""
    sum(range(iterations))
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        sum(range(iterations))
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return Timings(samples)


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def measure_weights(megabytes: int) -> tuple[float, float]:
    """(bytes of an array of `megabytes` MiB, RSS growth from allocating and touching it), in MB."""
    before = _rss_mb()
    weights = np.ones(megabytes * 2**20 // 4, dtype=np.float32)
    grown = _rss_mb() - before
    return weights.nbytes / 2**20, grown


def forward(
    batch: int, length: int | None, work: float, weights: tuple[float, float] | None = None
) -> Measurement:
    """A forward call of `work` times from_pretrained's work on `length` tokens (a pipeline's own: 16)."""
    timings = time_loop(int(WORK * batch * (length or 16) * work))
    quantiles = statistics.quantiles(timings.samples_ms, n=100, method="inclusive")
    p50 = timings.p50
    return Measurement(
        batch_size=batch,
        sequence_length=length,
        precision="fp32",
        latency_mean_ms=statistics.fmean(timings.samples_ms),
        latency_p50_ms=p50,
        latency_p90_ms=quantiles[89],
        latency_p99_ms=quantiles[98],
        latency_stdev_ms=statistics.stdev(timings.samples_ms),
        throughput_per_s=batch / (p50 / 1000),
        weights_mb=weights[0] if weights else None,
        model_load_mb=weights[1] if weights else None,
        iterations=ROUNDS,
        warmup=1,
        timer="perf_counter_ns",
        contended=False,
        scenario="forward",
    )


def generate(batch: int, length: int) -> Measurement:
    """A prefill over `length` tokens, then NEW_TOKENS - 1 decode steps, each timed."""
    rounds_ttft, steps = [], []
    for _ in range(ROUNDS):
        rounds_ttft.append(time_loop(WORK * batch * length, rounds=1).samples_ms[0])
        steps += [time_loop(WORK * batch * 4, rounds=1).samples_ms[0] for _ in range(NEW_TOKENS - 1)]
    ttft, tpot = statistics.median(rounds_ttft), statistics.median(steps)
    total = ttft + tpot * (NEW_TOKENS - 1)
    return Measurement(
        batch_size=batch,
        sequence_length=length,
        precision="fp32",
        latency_p50_ms=total,
        iterations=ROUNDS,
        timer="perf_counter_ns",
        scenario="generate",
        new_tokens=NEW_TOKENS,
        ttft_ms=ttft,
        tpot_ms=tpot,
        tpot_p90_ms=statistics.quantiles(steps, n=10, method="inclusive")[8],
        decode_tokens_per_s=batch * (NEW_TOKENS - 1) / (tpot * (NEW_TOKENS - 1) / 1000),
        prefill_tokens_per_s=batch * length / (ttft / 1000),
        output_digest=hashlib.sha256(GENERATED.encode()).hexdigest(),
    )


def run_rows(run: int) -> list[ResultRow]:
    """The selection's rows in run `run` (0, 1, 2): the third slows SLOWED and breaks BROKEN."""
    weights = measure_weights(4)
    rows = []
    for model, family in MODELS:
        key = model.split("/")[-1]
        for mode in MODES:
            broken = run == 2 and (model, mode) == BROKEN
            for batch in BATCHES:
                for length in (None,) if mode == "pipeline" else LENGTHS:
                    slowdown = SLOWDOWN if run == 2 and (model, mode, batch, length) == SLOWED else 1
                    case = (
                        f"{key}-{mode}-cpu"
                        + (f"-b{batch}" if batch > 1 else "")
                        + (f"-s{length}" if length else "")
                    )
                    rows.append(
                        results_helpers.make_row(
                            case,
                            model=model,
                            family=family,
                            mode=mode,
                            status="fail" if broken else "pass",
                            error_class="ModelConversionError" if broken else None,
                            error_message="no valid <ONNX> export | at opset 18" if broken else None,
                            suggested_fix="pin onnx<1.18 or convert with --hf-exporter dynamo"
                            if broken
                            else None,
                            measurement=None
                            if broken
                            else forward(batch, length, MODE_WORK[mode] * slowdown, weights),
                            output_sample=None if broken else f"top: paris 0.{41 + batch}, lyon 0.12 ({key})",
                        )
                    )
        if family == "gpt2":
            for mode in ("from_pretrained", "onnxruntime"):  # BROKEN breaks forward cases only
                for batch in BATCHES:
                    rows.append(
                        results_helpers.make_row(
                            f"{key}-{mode}-cpu-generate" + (f"-b{batch}" if batch > 1 else ""),
                            model=model,
                            family=family,
                            mode=mode,
                            measurement=generate(batch, 16),
                            output_sample=GENERATED,
                        )
                    )
    return rows


def build_history(db: Path) -> list[int]:
    """Store the three runs, an hour apart, each with its own commit; returns their run ids."""
    base = RunEnvironment.capture(["pytest", "--hf-family", "bert,gpt2"], [{"label": "cpu", "kind": "cpu"}])
    start = datetime.now(timezone.utc) - timedelta(hours=3)
    ids = []
    for run in range(3):
        environment = dataclasses.replace(
            base,
            run_uid=f"history-{run}",
            started_at=start + timedelta(hours=run),
            finished_at=start + timedelta(hours=run, minutes=5),
            git_commit=COMMITS[run],
        )
        ids.append(write_run(db, environment, run_rows(run)))
    return ids
