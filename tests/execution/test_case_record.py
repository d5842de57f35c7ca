"""A case's result row says what its model's weights were: random for the built sources and for
Hub models under --hf-weights random, pretrained otherwise."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_hfmodels.cases.expand import expand
from pytest_hfmodels.execution.case_record import CaseRecord
from pytest_hfmodels.registry.loader import load_registries
from tests.helpers import CPU_ONLY, cpu_settings

KEYS = ("bert-tiny", "bert-base-random", "bert-base-uncased", "all-minilm-l6-v2")
SETTINGS = cpu_settings(("from_pretrained",), models=KEYS, seq_lengths=(8,))


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        (
            "pretrained",
            {"bert-tiny": "random", "bert-base-random": "random", "bert-base-uncased": "pretrained"},
        ),
        # Only a Hub model's weights are replaced: a package ships its own.
        ("random", {"bert-tiny": "random", "bert-base-random": "random", "bert-base-uncased": "random"}),
    ],
)
def test_rows_say_whether_the_weights_were_random(weights: str, expected: dict[str, str]) -> None:
    entries = load_registries([]).select(models=KEYS)
    cases = expand(entries, dataclasses.replace(SETTINGS, weights=weights), CPU_ONLY)
    rows = {
        case.entry.key: CaseRecord(case).to_row(f"suite::{case.id}", "skipped", 0.0, None, "not run", "main")
        for case in cases
    }
    assert {key: row.weights for key, row in rows.items()} == {**expected, "all-minilm-l6-v2": "pretrained"}
    assert rows["bert-base-uncased"].source == "hub"  # the source stays what the registry says


def test_a_failed_conversion_is_a_recorded_attempt() -> None:
    """A case whose model could not be exported says so in its row, and the run's conversion
    registry keeps the failed attempt with its cause."""
    from pytest_hfmodels.db.conversions import conversions_of
    from pytest_hfmodels.errors import ModelConversionError

    entries = load_registries([]).select(models=("bert-tiny",))
    case = expand(entries, cpu_settings(("onnxruntime",), seq_lengths=(8,)), CPU_ONLY)[0]
    try:
        try:
            raise ModelConversionError("no valid ONNX export: legacy exporter failed")
        except ModelConversionError as cause:
            raise RuntimeError("fixture hf_runner failed") from cause
    except RuntimeError as error:
        failed = CaseRecord(case).to_row(f"suite::{case.id}", "failed", 0.1, error, None, "main")
    assert failed.measurement.onnx_conversion_status == "failed"
    passed = CaseRecord(case).to_row(f"suite::{case.id}", "passed", 0.1, None, None, "main")
    assert passed.measurement.onnx_conversion_status is None
    attempts, uses = conversions_of([failed])
    assert [(a.model_id, a.conversion_success) for a in attempts] == [("tiny/bert-tiny", False)]
    assert attempts[0].error_message and not uses
