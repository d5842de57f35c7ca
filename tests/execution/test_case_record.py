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
