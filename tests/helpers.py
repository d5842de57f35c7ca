"""What several test modules share: data paths, the built-in families, one-shape options, and a
plugin that dumps the result rows a pytester run reports."""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_hfmodels.cases.hardware import Device, Hardware
from pytest_hfmodels.cases.settings import Settings

DATA = Path(__file__).parent / "data"
#: the families model_registries/ holds, each with a tiny model in the small set
BUILTIN_FAMILIES = frozenset(
    {
        "bert",
        "clap",
        "clip",
        "detr",
        "gpt2",
        "llama",
        "llava",
        "llava_next",
        "qwen2",
        "sam",
        "t5",
        "vit",
        "wav2vec2",
        "whisper",
        "xclip",
    }
)
#: one input shape instead of the default sweep, for tests about something else than the sweep
ONE_SHAPE = ("--hf-batch-sizes=1", "--hf-seq-lengths=32", "--hf-audio-seconds=1")


def torchvision_import_error() -> str | None:
    """How importing torchvision fails here, as the pipeline runner names it (type and first line);
    None where it imports. The mask-generation pipeline needs it; PyPI's builds for some torch
    releases fail as they load ("operator torchvision::nms does not exist")."""
    try:
        importlib.import_module("torchvision")
    except Exception as exc:
        return f"{type(exc).__name__}: {next(iter(str(exc).strip().splitlines()), '')}"
    return None


#: the one device of the selection tests: this machine's CPU
CPU_ONLY = Hardware((Device(label="cpu", kind="cpu", name="test cpu"),))


def cpu_settings(modes: tuple[str, ...], **fields: Any) -> Settings:
    """Settings of an `all`-set selection on the CPU at one batch size; `fields` override."""
    settings = Settings(
        families=(),
        models=(),
        model_set="all",
        modes=modes,
        hardware="cpu",
        hardware_list=(),
        registry_dirs=(),
        cache_dir=None,
        offline=True,
        list_models=False,
        suite_requested=True,
        batch_sizes=(1,),
    )
    return dataclasses.replace(settings, **fields)


def pytest_argv(*args: str) -> list[str]:
    """A separate pytest process (the way users start one), without pytest's cache folder."""
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


#: one quick bert-tiny case, checked and not timed: runs in a pytest process in a few seconds
BERT_ONE_CASE = (
    "--hf-model=bert-tiny",
    "--hf-mode=from_pretrained",
    "--hf-batch-sizes=1",
    "--hf-seq-lengths=8",
    "--hf-verify-only",
)

# A plugin (not a conftest: conftest hooks apply only below their folder, and the generated
# suite lives in the package) appending every row the controller receives to a file.
ROW_DUMP = """
import json
from pytest_hfmodels.results import USER_PROPERTY

def pytest_configure(config):
    global controller
    controller = not hasattr(config, "workerinput")

def pytest_runtest_logreport(report):
    for name, value in report.user_properties:
        if name == USER_PROPERTY and controller:
            with open({path!r}, "a") as out:
                out.write(json.dumps(value) + "\\n")
"""


def dump_rows(pytester: pytest.Pytester) -> tuple[Path, list[str]]:
    """Rows file and the arguments that load the row-dumping plugin."""
    path = pytester.path / "rows.jsonl"
    pytester.makepyfile(rowdump=ROW_DUMP.format(path=str(path)))
    pytester.syspathinsert()
    return path, ["-p", "rowdump"]


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
