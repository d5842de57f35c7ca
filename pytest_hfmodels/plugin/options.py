"""Every `--hf-*` option and ini twin of the plugin, declared here once and read into `Settings`.

Declaring is pytest's side (`pytest_addoption`); reading is `cases.settings.build_settings`, which
takes plain `getoption` / `getini` callables, so the rules stay testable without pytest.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_hfmodels.cases.defaults import (
    DEFAULT_AUDIO_SECONDS,
    DEFAULT_BATCH_SIZES,
    DEFAULT_DB_PATH,
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_MIN_ROUNDS,
    DEFAULT_MIN_TIME_S,
    DEFAULT_NEW_TOKENS,
    DEFAULT_ONNX_FILES,
    DEFAULT_SEQ_LENGTHS,
    DEFAULT_WARMUP,
    MODEL_SETS,
    SCENARIOS,
)
from pytest_hfmodels.errors import OptionError
from pytest_hfmodels.modes import MODES
from pytest_hfmodels.registry.vocabulary import WEIGHTS

if TYPE_CHECKING:
    from pytest_hfmodels.cases.settings import Settings

# This module is imported into every pytest run the plugin is installed in, asked for or not: it
# reads its defaults and choices from plain constants, and the modules that parse and build
# settings are imported only when an option is given or the settings are read.


def _hardware_list(text: str) -> object:
    from pytest_hfmodels.cases.hardware import parse_hardware_list

    return parse_hardware_list(text)


def _seconds(text: str) -> object:
    from pytest_hfmodels.cases.settings import parse_seconds

    return parse_seconds(text)


def _listed(values: tuple[object, ...]) -> str:
    return ",".join(str(value) for value in values)


def _checked(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """An argparse `type=` rejecting what `parse` rejects, in argparse's words (which name the option);
    the text is kept, and `build_settings` parses it with its ini twin."""

    def check(value: str) -> str:
        try:
            parse(value)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
        return value

    return check


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("hfmodels", "Hugging Face model tests (pytest-hfmodels)")
    add = group.addoption
    # What to test
    add("--hf-family", action="append", metavar="NAME", help="families to test (repeatable, comma lists)")
    add("--hf-model", action="append", metavar="KEY", help="model keys to test (repeatable, comma lists)")
    add(
        "--hf-set",
        choices=MODEL_SETS,
        help="model set: small (default), medium (random weights at a real size), key, all or custom",
    )
    add("--hf-models-file", metavar="PATH", help="the custom set: JSON/YAML {key: {name, family, ...}}")
    add(
        "--hf-mode",
        action="append",
        metavar="MODES",
        help=f"modes, comma list: {', '.join(MODES)} (default: every mode a family allows)",
    )
    add("--all-hardware", dest="hf_all_hardware", action="store_true", help="every detected device")
    add("--cpu-only", dest="hf_cpu_only", action="store_true", help="the cpu only")
    add(
        "--hf-hardware",
        type=_checked(_hardware_list),
        metavar="LIST",
        help="devices, comma list (cpu, cuda, cuda1, rocm, mps, ov-gpu, ov-npu)",
    )
    add("--hf-list-models", action="store_true", help="print the registries as a table and exit")
    add("--hf-registry", action="append", metavar="DIR", help="extra registry folder (repeatable)")
    add("--hf-cache-dir", metavar="DIR", help="cache for tiny models and conversions")
    add("--hf-offline", action="store_true", help="never reach the Hub: the HF cache answers")
    add(
        "--hf-weights",
        choices=WEIGHTS,
        help="pretrained (default), or random: each Hub model's config.json with seeded random "
        "weights and its family's tiny tokenizer, built once into the cache",
    )
    add(
        "--hf-verify-cache",
        action="store_true",
        help="rehash every cached tiny model and conversion before use (default: check sizes, "
        "and hashes of files whose mtime moved)",
    )
    add(
        "--hf-scenario",
        action="append",
        metavar="LIST",
        help=f"{' or '.join(SCENARIOS)}: one call, or greedy decoding timed per token; comma list "
        "(default: both where the model generates, forward elsewhere)",
    )
    add(
        "--hf-new-tokens",
        metavar="N",
        help=f"tokens each generate case decodes, EOS ignored (default {DEFAULT_NEW_TOKENS})",
    )
    add(
        "--hf-onnx-file",
        action="append",
        metavar="PATH",
        help="the repo's own ONNX file the onnxruntime and openvino modes use before converting, "
        f"comma list tried in order (default: {', then '.join(DEFAULT_ONNX_FILES)})",
    )
    # The input sweep
    add(
        "--hf-batch-sizes",
        metavar="LIST",
        help=f"batch sizes to measure, comma list (default {_listed(DEFAULT_BATCH_SIZES)})",
    )
    add(
        "--hf-seq-lengths",
        metavar="LIST",
        help=f"text lengths in tokens, comma list (default {_listed(DEFAULT_SEQ_LENGTHS)})",
    )
    add(
        "--hf-audio-seconds",
        metavar="LIST",
        help=f"audio lengths in seconds, comma list (default {_listed(DEFAULT_AUDIO_SECONDS)})",
    )
    # How cases run and are timed
    add(
        "--hf-threads",
        metavar="N",
        help="CPU threads per runtime (default: the runtime's own; under -n, CPUs divided by workers)",
    )
    add("--hf-verify-only", action="store_true", help="check outputs, skip timing")
    add("--hf-benchmark-only", action="store_true", help="time, skip output checks")
    add("--hf-warmup", type=int, metavar="N", help=f"untimed warm-up calls (default {DEFAULT_WARMUP})")
    add("--hf-rounds", type=int, metavar="N", help=f"minimum timed rounds (default {DEFAULT_MIN_ROUNDS})")
    add(
        "--hf-min-time", type=float, metavar="S", help=f"minimum timed seconds (default {DEFAULT_MIN_TIME_S})"
    )
    add(
        "--hf-pool-memory-mb",
        metavar="MIB",
        help="memory for loaded models kept for reuse per process (default: a quarter of RAM)",
    )
    # Where results go
    add(
        "--hf-db",
        metavar="PATH",
        help=f"results database (default: ini hf_db, else {DEFAULT_DB_PATH} under rootdir)",
    )
    add("--hf-no-db", action="store_true", help="do not store results in the database")
    add(
        "--hf-json", metavar="PATH", help="also write this run's results as JSON (the original tools' format)"
    )
    add(
        "--hf-db-timeout",
        metavar="SECONDS",
        type=_checked(_seconds),
        help="how long to wait for a locked database before spilling results to a file "
        f"(default: ini hf_db_timeout, else {DEFAULT_LOCK_TIMEOUT_S:g})",
    )

    ini = parser.addini
    ini("hf_families", "default families to test", type="args", default=[])
    ini("hf_models", "default model keys to test", type="args", default=[])
    ini("hf_set", "default model set (small, medium, key, all)", default="")
    ini("hf_modes", "default modes, comma list", default="")
    ini("hf_hardware", "default devices, comma list", default="")
    ini("hf_registry_dirs", "extra registry folders, relative to the rootdir", type="args", default=[])
    ini("hf_cache_dir", "cache for tiny models and conversions", default="")
    ini("hf_offline", "never reach the Hub (true/false)", default="false")
    ini("hf_weights", "pretrained or random (Hub models' configs with random weights)", default="")
    ini("hf_verify_cache", "rehash every cached file before use (true/false)", default="false")
    ini("hf_scenarios", f"default scenarios, comma list ({', '.join(SCENARIOS)})", default="")
    ini("hf_new_tokens", "tokens each generate case decodes", default="")
    ini("hf_onnx_file", "the repo's own ONNX files to use before converting, comma list", default="")
    ini("hf_batch_sizes", "batch sizes to measure, comma list", default="")
    ini("hf_seq_lengths", "text lengths in tokens to measure, comma list", default="")
    ini("hf_audio_seconds", "audio lengths in seconds to measure, comma list", default="")
    ini("hf_models_file", "the custom set's file (with hf_set = custom)", default="")
    ini("hf_pool_memory_mb", "memory for loaded models kept for reuse, MiB", default="")
    ini("hf_threads", "CPU threads per runtime", default="")
    ini("hf_db", "results database path, relative to rootdir", default=str(DEFAULT_DB_PATH))
    ini(
        "hf_db_timeout",
        "seconds to wait for a locked results database",
        default=f"{DEFAULT_LOCK_TIMEOUT_S:g}",
    )


def read_settings(config: pytest.Config) -> Settings:
    """The options, ini twins and environment as `Settings`; a bad value is a usage error naming it."""
    from pytest_hfmodels.cases.settings import build_settings

    try:
        return build_settings(
            config.getoption,
            config.getini,
            config.rootpath,
            MODES,
            invocation_dir=config.invocation_params.dir,
            has_inifile=config.inipath is not None,
        )
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from exc
