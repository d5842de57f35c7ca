"""The p50 the harness reports against an independent `timeit` of the same onnxruntime session."""

from __future__ import annotations

import statistics
import tempfile
import timeit
from pathlib import Path

import numpy as np


def main() -> None:
    import onnxruntime as ort
    import torch
    import transformers

    from pytest_hfmodels.cases.settings import MeasureConfig
    from pytest_hfmodels.execution.measure import time_rounds

    config = transformers.BertConfig(
        hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512, vocab_size=1000
    )
    torch.manual_seed(0)

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = transformers.BertModel(config)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids).last_hidden_state

    model = LastHiddenState().eval()
    ids = torch.randint(0, 1000, (4, 64))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bert.onnx"
        torch.onnx.export(
            model,
            (ids,),
            str(path),
            input_names=["input_ids"],
            output_names=["last_hidden_state"],
            opset_version=18,
            dynamo=False,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids.numpy().astype(np.int64)}

    def call() -> None:
        session.run(None, feed)

    harness_p50, timeit_p50 = [], []
    for _ in range(3):  # interleave, so drift of the machine hits both alike
        timing = time_rounds(call, MeasureConfig(warmup=5, min_rounds=200, min_time_s=0.5))
        harness_p50.append(timing.percentile(50))
        runs = timeit.repeat(call, repeat=200, number=1)
        timeit_p50.append(statistics.median(runs) * 1000)
    ours, theirs = statistics.median(harness_p50), statistics.median(timeit_p50)
    print("BertModel 4x128, batch 4, seq 64, onnxruntime CPU, 1 intra-op thread")
    print(f"{'harness p50 (ms)':<24}{ours:>9.3f}   per repeat: {', '.join(f'{v:.3f}' for v in harness_p50)}")
    print(
        f"{'timeit median (ms)':<24}{theirs:>9.3f}   per repeat: {', '.join(f'{v:.3f}' for v in timeit_p50)}"
    )
    print(f"difference: {100 * (ours - theirs) / theirs:+.2f}%")


if __name__ == "__main__":
    main()
