"""The generated suite's generate scenario: gpt2, llama, qwen2, t5 and whisper decode in PyTorch,
onnxruntime and OpenVINO; every row holds its figures, and the exported runtimes generate the very
tokens PyTorch does, row for row and batch for batch (equal output digests)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.helpers import dump_rows, read_rows

pytestmark = pytest.mark.slow
pytest_plugins = ("pytester",)

MODELS = ("gpt2-tiny", "llama-tiny", "qwen2-tiny", "t5-tiny", "whisper-tiny-random")
MODES = ("from_pretrained", "onnxruntime", "openvino")


def test_generate_is_token_exact_in_every_runtime(pytester: pytest.Pytester) -> None:
    rows_file, plugin = dump_rows(pytester)
    result = pytester.runpytest(
        f"--hf-model={','.join(MODELS)}",
        "--hf-scenario=generate",
        f"--hf-mode={','.join(MODES)}",
        "--hf-batch-sizes=1,2",
        "--hf-seq-lengths=8",
        "--hf-audio-seconds=1",
        "--hf-new-tokens=8",
        "--hf-warmup=1",
        "--hf-rounds=2",
        "--hf-min-time=0",
        "--hf-no-db",
        *plugin,
    )
    result.assert_outcomes(passed=len(MODELS) * len(MODES) * 2)
    rows = read_rows(rows_file)
    digests: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
    for row in rows:
        m = row["measurement"]
        assert m["scenario"] == "generate" and m["new_tokens"] == 8, row["case_id"]
        assert m["ttft_ms"] > 0 and 0 < m["tpot_ms"] <= m["tpot_p90_ms"], row["case_id"]
        assert m["decode_tokens_per_s"] > 0 and m["prefill_tokens_per_s"] > 0, row["case_id"]
        assert len(m["output_digest"]) == 64 and row["output_sample"], row["case_id"]
        digests[(row["model_key"], m["batch_size"])][row["mode"]] = m["output_digest"]
    assert len(digests) == len(MODELS) * 2
    for key, by_mode in digests.items():
        assert set(by_mode) == set(MODES), key
        assert by_mode["onnxruntime"] == by_mode["openvino"] == by_mode["from_pretrained"], key
