"""The built-in generated suite: one test, parametrized with every selected case.

The plugin puts this file on the command line when a selection option (--hf-family, --hf-model,
--hf-set, --hf-mode, hardware options) is given without explicit test paths.
"""

from __future__ import annotations

from pytest_hfmodels.cases import Case
from pytest_hfmodels.record import CaseRecord
from pytest_hfmodels.runners import Runner


def test_model(hf_case: Case, hf_runner: Runner, hf_record: CaseRecord) -> None:
    hf_record.run(hf_runner)
