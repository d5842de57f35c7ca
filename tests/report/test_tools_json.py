"""The original tools' per-run JSON (--hf-json): its examples are what each case's model answered."""

from __future__ import annotations

from pytest_hfmodels.db.environment import RunEnvironment
from pytest_hfmodels.report.tools_json import results_json
from pytest_hfmodels.results import Measurement
from tests import results_helpers


def test_examples_hold_each_cases_output_sample() -> None:
    rows = [
        results_helpers.make_row(
            "bert-tiny-pipeline-cpu", measurement=Measurement(batch_size=1), output_sample="mask: paris 0.41"
        ),
        results_helpers.make_row(
            "bert-tiny-pipeline-cpu-b4",
            measurement=Measurement(batch_size=4),
            output_sample="mask: paris 0.40",
        ),
        results_helpers.make_row("bert-tiny-onnxruntime-cpu", mode="onnxruntime", status="fail"),
    ]
    data = results_json(RunEnvironment.capture(["pytest"], []), rows, run_id=None)
    assert data["examples"] == {
        "pipeline": {
            "cpu": {
                "bert-tiny": [
                    {"case_id": "bert-tiny-pipeline-cpu", "scenario": "forward", "batch_size": 1,
                     "output": "mask: paris 0.41"},
                    {"case_id": "bert-tiny-pipeline-cpu-b4", "scenario": "forward", "batch_size": 4,
                     "output": "mask: paris 0.40"},
                ]
            }
        }
    }  # fmt: skip
