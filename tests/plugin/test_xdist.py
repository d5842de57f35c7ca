"""Under pytest-xdist, where each case actually ran: one model, one worker, whatever pytest's version.

The worker of every case comes back in its result row (`worker`), dumped by a small plugin on the
controller, so the tests see where cases ran, not which option or scheduler was chosen.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from pytest_hfmodels.plugin.xdist import CaseModels
from tests.helpers import ONE_SHAPE, dump_rows, read_rows

MODELS = "bert-tiny,gpt2-tiny,vit-tiny"
#: a few quick cases per model, checked and not timed
SMALL = (
    "--hf-model",
    MODELS,
    "--hf-mode",
    "from_pretrained",
    "--hf-scenario",
    "forward",
    "--hf-verify-only",
    *ONE_SHAPE,
)


@pytest.mark.slow
def test_every_case_of_a_model_runs_on_one_worker(pytester: pytest.Pytester) -> None:
    rows_file, plugin = dump_rows(pytester)
    # --hf-batch-sizes=1,2: two cases of each model at least, so splitting one would show.
    result = pytester.runpytest_subprocess(*SMALL, "--hf-batch-sizes=1,2", "-n", "2", "-v", *plugin)
    assert result.ret == 0, result.stdout.str()[-3000:]
    workers_of: dict[str, set[str]] = defaultdict(set)
    cases_of: dict[str, int] = defaultdict(int)
    for row in read_rows(rows_file):
        workers_of[row["model_key"]].add(row["worker"])
        cases_of[row["model_key"]] += 1
    assert set(workers_of) == set(MODELS.split(","))
    assert all(count >= 2 for count in cases_of.values()), cases_of
    assert {key: len(workers) for key, workers in workers_of.items()} == dict.fromkeys(workers_of, 1)
    # both workers had work: a model each at least
    assert set().union(*workers_of.values()) == {"gw0", "gw1"}
    result.stdout.fnmatch_lines(["scheduling tests via ModelScheduling"])


@pytest.mark.slow
def test_a_dist_mode_given_is_the_users(pytester: pytest.Pytester) -> None:
    args = ("--hf-model", "bert-tiny", "--hf-mode", "from_pretrained", "--hf-verify-only", *ONE_SHAPE)
    result = pytester.runpytest_subprocess(*args, "-n", "2", "--dist", "load", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["scheduling tests via LoadScheduling"])


def test_a_run_without_the_plugin_keeps_xdists_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="import pytest\n\n@pytest.mark.parametrize('i', range(4))\ndef test_x(i):\n    pass\n"
    )
    result = pytester.runpytest_subprocess("-n", "2", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["scheduling tests via LoadScheduling"])


MODELS_BY_CASE = CaseModels.of(
    [
        ("bert-tiny-pipeline-cpu", "bert-tiny"),
        ("bert-tiny-from_pretrained-cpu-s32", "bert-tiny"),
        ("gpt2-tiny-from_pretrained-cpu-b4-s32", "gpt2-tiny"),
    ]
)


@pytest.mark.parametrize(
    ("nodeid", "model"),
    [
        ("pytest_hfmodels/suite/test_models.py::test_model[bert-tiny-pipeline-cpu]", "bert-tiny"),
        ("tests/test_team.py::TestX::test_y[gpt2-tiny-from_pretrained-cpu-b4-s32]", "gpt2-tiny"),
        # a team's test parametrized further: ids joined with dashes, the case's anywhere
        ("tests/test_team.py::test_y[bert-tiny-from_pretrained-cpu-s32-fast]", "bert-tiny"),
        ("tests/test_team.py::test_y[fast-1-bert-tiny-pipeline-cpu]", "bert-tiny"),
        # a test given one case per model x mode x device, or per model: the start of a case id
        ("tests/test_team.py::test_runner[gpt2-tiny-from_pretrained-cpu]", "gpt2-tiny"),
        ("tests/test_team.py::test_folder[gpt2-tiny]", "gpt2-tiny"),
        ("tests/test_team.py::test_y[bert-tin]", None),  # no case id in it
        ("tests/test_team.py::test_plain", None),
        ("tests/test_a[1].py::test_plain", None),  # brackets in the path are no parameter id
    ],
)
def test_a_node_ids_model_comes_from_its_case_id(nodeid: str, model: str | None) -> None:
    assert MODELS_BY_CASE.model_of(nodeid) == model
