"""The runner pool: models are reused, and released least recently used first over the budget."""

from __future__ import annotations

from pathlib import Path

from pytest_hfmodels.cases.expand import Case
from pytest_hfmodels.cases.hardware import detect
from pytest_hfmodels.execution.pool import RunnerPool
from pytest_hfmodels.registry.loader import load_registries
from pytest_hfmodels.sources.resolve import resolve_model_files


def cases(*keys: str) -> list[Case]:
    entries = {e.key: e for e in load_registries([]).entries}
    return [Case(entries[key], "from_pretrained", "cpu") for key in keys]


def test_reuse_and_release_least_recently_used_over_budget(tmp_path: Path) -> None:
    hardware = detect()
    bert, gpt2, vit = cases("bert-tiny", "gpt2-tiny", "vit-tiny")
    files = {c.entry.key: resolve_model_files(c.entry, tmp_path, offline=True) for c in (bert, gpt2, vit)}

    roomy = RunnerPool(budget_mb=1e9)
    first, reused_first = roomy.get(bert, hardware, files["bert-tiny"])
    again, reused_again = roomy.get(bert, hardware, files["bert-tiny"])
    assert again.runner is first.runner and first.load_time_s > 0
    assert (reused_first, reused_again) == (False, True)
    assert again.load_time_s == first.load_time_s  # the load that was measured, carried by the reuse
    roomy.get(gpt2, hardware, files["gpt2-tiny"])
    assert roomy.released == []

    # A budget that holds one tiny model: the least recently used one goes first.
    one_model = RunnerPool(budget_mb=0.0)
    one_model.get(bert, hardware, files["bert-tiny"])
    one_model.get(gpt2, hardware, files["gpt2-tiny"])
    one_model.get(bert, hardware, files["bert-tiny"])  # loaded again: it had been released
    one_model.get(vit, hardware, files["vit-tiny"])
    assert one_model.released == [
        ("bert-tiny", "from_pretrained", "cpu"),
        ("gpt2-tiny", "from_pretrained", "cpu"),
        ("bert-tiny", "from_pretrained", "cpu"),
    ]
    assert one_model.held_mb > 0
    for pool in (roomy, one_model):
        pool.close()
