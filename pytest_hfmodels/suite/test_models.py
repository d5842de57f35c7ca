"""The built-in generated suite: one test, parametrized with every selected case.

The plugin puts this file on the command line when a selection option (--hf-family, --hf-model,
--hf-set, --hf-mode, hardware options) is given without explicit test paths.
"""

from __future__ import annotations

import pytest

from pytest_hfmodels.cases.expand import Case
from pytest_hfmodels.cases.hardware import Device
from pytest_hfmodels.errors import GenerationUnsupportedError
from pytest_hfmodels.execution.case_record import CaseRecord
from pytest_hfmodels.plugin.session import PluginSession
from pytest_hfmodels.runners import Runner


def test_model(
    hf_case: Case,
    hf_runner: Runner,
    hf_device: Device,
    hf_record: CaseRecord,
    hf_session: PluginSession,
    request: pytest.FixtureRequest,
) -> None:
    settings = hf_session.settings
    # Other xdist workers run their own cases on the same cores meanwhile: say so in the row.
    contended = hf_session.workers > 1
    if hf_case.scenario == "generate":
        try:
            hf_record.generate(
                hf_runner,
                settings.measure,
                settings.new_tokens,
                hf_device.kind,
                check=not settings.benchmark_only,
                timed=not settings.verify_only,
                contended=contended,
            )
        except GenerationUnsupportedError as exc:  # names the model and why (llava's graphs, say)
            pytest.skip(str(exc))
        return
    hf_record.run(hf_runner, check=not settings.benchmark_only)
    if settings.verify_only:
        return
    benchmark = (
        request.getfixturevalue("benchmark") if request.config.pluginmanager.hasplugin("benchmark") else None
    )
    hf_record.benchmark(hf_runner, settings.measure, hf_device.kind, benchmark, contended)
