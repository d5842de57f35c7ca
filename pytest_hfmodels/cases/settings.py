"""Frozen run settings, built from command-line options, their ini twins and the environment.

`pytest.Config` is read through a small `getoption` / `getini` pair so this module stays free of
pytest imports and of I/O.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_hfmodels.cases.defaults import (
    DEFAULT_AUDIO_SECONDS,
    DEFAULT_BATCH_SIZES,
    DEFAULT_DB_PATH,
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_MAX_ROUNDS,
    DEFAULT_MIN_ROUNDS,
    DEFAULT_MIN_TIME_S,
    DEFAULT_NEW_TOKENS,
    DEFAULT_ONNX_FILES,
    DEFAULT_SEQ_LENGTHS,
    DEFAULT_WARMUP,
    MODEL_SETS,
    SCENARIOS,
)
from pytest_hfmodels.cases.hardware import parse_hardware_list
from pytest_hfmodels.errors import OptionError
from pytest_hfmodels.registry.vocabulary import WEIGHTS


@dataclass(frozen=True)
class MeasureConfig:
    """How a case is timed (the defaults are written in `defaults`)."""

    warmup: int = DEFAULT_WARMUP  #: untimed calls before the rounds
    min_rounds: int = DEFAULT_MIN_ROUNDS
    min_time_s: float = DEFAULT_MIN_TIME_S  #: rounds go on until this much time was measured too
    max_rounds: int = DEFAULT_MAX_ROUNDS


@dataclass(frozen=True)
class Settings:
    """What the user asked for; every field has one meaning and one source of truth."""

    families: tuple[str, ...]
    models: tuple[str, ...]
    model_set: str
    modes: tuple[str, ...]
    hardware: str  #: best | all | cpu | list
    hardware_list: tuple[str, ...]  #: with hardware == "list"
    registry_dirs: tuple[Path, ...]
    cache_dir: Path | None
    offline: bool
    list_models: bool
    #: a selection option was given: run the built-in generated suite
    suite_requested: bool
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    seq_lengths: tuple[int, ...] = DEFAULT_SEQ_LENGTHS  #: text lengths in tokens to sweep
    audio_seconds: tuple[int, ...] = DEFAULT_AUDIO_SECONDS  #: audio lengths in seconds to sweep
    verify_only: bool = False  #: check outputs, skip timing
    benchmark_only: bool = False  #: time, skip output checks
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    models_file: Path | None = None  #: the custom set's file (--hf-set custom)
    pool_memory_mb: float | None = None  #: budget of loaded models per process; None: a quarter of RAM
    #: CPU threads per runtime (--hf-threads); None: the runtime's default, or a fair share under xdist
    threads: int | None = None
    db_path: Path | None = None  #: the results database; None: results are not stored (--hf-no-db)
    json_path: Path | None = None  #: also write the run's results as the original tools' JSON
    db_lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S  #: wait this long for a locked database, then spill
    #: rehash every cached file before use (default: sizes always, hashes where an mtime moved)
    verify_cache: bool = False
    #: pretrained | random: random runs every Hub model's configuration with seeded random weights
    weights: str = "pretrained"
    #: the scenarios asked for; () by default: both where the model generates, forward elsewhere
    scenarios: tuple[str, ...] = ()
    new_tokens: int = DEFAULT_NEW_TOKENS
    #: the repo files the exported modes use before converting a Hub model (the first one present)
    onnx_files: tuple[str, ...] = DEFAULT_ONNX_FILES


def split_list(values: Iterable[str] | str | None) -> tuple[str, ...]:
    """Flatten repeated options and comma lists: ["a,b", "c"] -> ("a", "b", "c")."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    items: list[str] = []
    for value in values:
        items.extend(part.strip() for part in str(value).replace("\n", ",").split(",") if part.strip())
    return tuple(dict.fromkeys(items))


def build_settings(
    getoption: Callable[[str], Any],
    getini: Callable[[str], Any],
    rootdir: Path,
    known_modes: Iterable[str],
    *,
    invocation_dir: Path | None = None,
    has_inifile: bool = True,
) -> Settings:
    """`invocation_dir`: where pytest was started (paths given as options are relative to it);
    `has_inifile`: the rootdir came from an ini file, so the database is kept beside it."""
    invocation_dir = invocation_dir or rootdir
    families = split_list(getoption("hf_family")) or split_list(getini("hf_families"))
    models = split_list(getoption("hf_model")) or split_list(getini("hf_models"))
    model_set = getoption("hf_set") or getini("hf_set") or "small"
    if model_set not in MODEL_SETS:
        raise OptionError(f"hf_set: {model_set!r} is not one of {', '.join(MODEL_SETS)}")
    weights = getoption("hf_weights") or getini("hf_weights") or "pretrained"
    if weights not in WEIGHTS:
        raise OptionError(f"hf_weights: {weights!r} is not one of {', '.join(WEIGHTS)}")
    known = tuple(known_modes)
    # By default every mode a family allows runs: a family's `modes:` narrows it (expand), as the
    # plugin's design names OpenVINO and onnxruntime beside pipeline and from_pretrained.
    modes = split_list(getoption("hf_mode")) or split_list(getini("hf_modes")) or known
    for mode in modes:
        if mode not in known:
            raise OptionError(f"--hf-mode: unknown mode {mode!r} (known: {', '.join(known)})")

    scenarios = split_list(getoption("hf_scenario")) or split_list(getini("hf_scenarios"))
    for scenario in scenarios:
        if scenario not in SCENARIOS:
            raise OptionError(f"--hf-scenario: unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    new_tokens = _ints_or(
        "--hf-new-tokens", getoption("hf_new_tokens") or getini("hf_new_tokens"), (DEFAULT_NEW_TOKENS,)
    )
    if len(new_tokens) != 1:
        raise OptionError(f"--hf-new-tokens: {new_tokens} is not one positive integer")

    onnx_files = split_list(getoption("hf_onnx_file")) or split_list(getini("hf_onnx_file"))
    for name in onnx_files:
        if not name.endswith(".onnx") or name.startswith("/") or ".." in name.split("/"):
            raise OptionError(f"--hf-onnx-file: {name!r} is not a relative path of an .onnx file in a repo")

    all_hw, cpu_only = bool(getoption("hf_all_hardware")), bool(getoption("hf_cpu_only"))
    listed = getoption("hf_hardware") or getini("hf_hardware")
    if sum((all_hw, cpu_only, bool(getoption("hf_hardware")))) > 1:
        raise OptionError("--all-hardware, --cpu-only and --hf-hardware exclude each other: give one")
    hardware_list = parse_hardware_list(listed) if isinstance(listed, str) and listed else ()
    hardware = "all" if all_hw else "cpu" if cpu_only else "list" if hardware_list else "best"

    registry_dirs = [Path(d) for d in getoption("hf_registry") or ()]
    registry_dirs += [_relative_to(rootdir, d) for d in split_list(getini("hf_registry_dirs"))]
    cache = getoption("hf_cache_dir") or getini("hf_cache_dir")
    offline = (
        bool(getoption("hf_offline"))
        or _truthy(getini("hf_offline"))
        or _truthy(os.environ.get("HF_HUB_OFFLINE"))
    )
    verify_only, benchmark_only = bool(getoption("hf_verify_only")), bool(getoption("hf_benchmark_only"))
    if verify_only and benchmark_only:
        raise OptionError("--hf-verify-only and --hf-benchmark-only exclude each other: give one")
    batch_sizes = _ints_or(
        "--hf-batch-sizes", getoption("hf_batch_sizes") or getini("hf_batch_sizes"), DEFAULT_BATCH_SIZES
    )
    measure = MeasureConfig(
        warmup=_int_option("--hf-warmup", getoption("hf_warmup"), MeasureConfig.warmup, minimum=0),
        min_rounds=_int_option("--hf-rounds", getoption("hf_rounds"), MeasureConfig.min_rounds, minimum=1),
        min_time_s=float(
            getoption("hf_min_time") if getoption("hf_min_time") is not None else MeasureConfig.min_time_s
        ),
    )
    selection_given = any(
        getoption(name)
        for name in (
            "hf_family",
            "hf_model",
            "hf_set",
            "hf_mode",
            "hf_all_hardware",
            "hf_cpu_only",
            "hf_hardware",
            "hf_batch_sizes",
            "hf_seq_lengths",
            "hf_audio_seconds",
            "hf_scenario",
        )
    )
    return Settings(
        families=families,
        models=models,
        model_set=model_set,
        modes=modes,
        hardware=hardware,
        hardware_list=hardware_list,
        registry_dirs=tuple(dict.fromkeys(registry_dirs)),
        cache_dir=Path(cache).expanduser() if cache else None,
        offline=offline,
        list_models=bool(getoption("hf_list_models")),
        verify_cache=bool(getoption("hf_verify_cache")) or _truthy(getini("hf_verify_cache")),
        weights=weights,
        scenarios=scenarios,
        new_tokens=new_tokens[0],
        onnx_files=onnx_files or DEFAULT_ONNX_FILES,
        suite_requested=selection_given,
        models_file=_models_file(model_set, getoption("hf_models_file") or getini("hf_models_file"), rootdir),
        pool_memory_mb=_pool_budget(getoption("hf_pool_memory_mb") or getini("hf_pool_memory_mb")),
        batch_sizes=batch_sizes,
        seq_lengths=_ints_or(
            "--hf-seq-lengths", getoption("hf_seq_lengths") or getini("hf_seq_lengths"), DEFAULT_SEQ_LENGTHS
        ),
        audio_seconds=_ints_or(
            "--hf-audio-seconds",
            getoption("hf_audio_seconds") or getini("hf_audio_seconds"),
            DEFAULT_AUDIO_SECONDS,
        ),
        threads=_threads(getoption("hf_threads") or getini("hf_threads")),
        verify_only=verify_only,
        benchmark_only=benchmark_only,
        measure=measure,
        db_path=_db_path(getoption, getini, rootdir if has_inifile else invocation_dir, invocation_dir),
        json_path=invocation_dir / getoption("hf_json") if getoption("hf_json") else None,
        db_lock_timeout_s=_lock_timeout(getoption("hf_db_timeout"), getini("hf_db_timeout")),
    )


def _db_path(
    getoption: Callable[[str], Any], getini: Callable[[str], Any], base: Path, invocation_dir: Path
) -> Path | None:
    if getoption("hf_no_db"):
        return None
    if getoption("hf_db"):
        return invocation_dir / str(getoption("hf_db"))
    # Beside the project's ini file, like .pytest_cache. Without one, pytest guesses the rootdir
    # from path-like arguments (an option's value such as --hf-registry DIR counts), so the
    # directory pytest was started in is the predictable place.
    return base / str(getini("hf_db") or DEFAULT_DB_PATH)


def non_negative(text: Any, unit: str | None = None) -> float:
    """A finite number >= 0 (of `unit`); the error says what is wrong, its caller names the option.

    NaN and infinity are refused: they would slip past every comparison made with them later.
    """
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"{text!r} is not a number" + (f" of {unit}" if unit else "")) from None
    if not math.isfinite(value) or value < 0:
        raise OptionError(f"{text!r}: must be a finite number >= 0")
    return value


def parse_seconds(text: str) -> float:
    return non_negative(text, "seconds")


def _lock_timeout(option: Any, ini: Any) -> float:
    if option is not None:
        return float(option)
    if ini in (None, ""):
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        return parse_seconds(str(ini))
    except OptionError as exc:
        raise OptionError(f"ini hf_db_timeout: {exc}") from None


def parse_int_list(option: str, value: str) -> tuple[int, ...]:
    """ "1,4,8" -> (1, 4, 8); anything but positive integers is an error naming the option."""
    numbers = []
    for item in split_list(value):
        if not item.isdigit() or int(item) < 1:
            raise OptionError(f"{option}: {item!r} is not a positive integer")
        numbers.append(int(item))
    if not numbers:
        raise OptionError(f"{option}: no values given")
    return tuple(numbers)


def _ints_or(option: str, value: Any, default: tuple[int, ...]) -> tuple[int, ...]:
    return parse_int_list(option, str(value)) if value else default


def _threads(value: Any) -> int | None:
    if value in (None, ""):
        return None
    numbers = parse_int_list("--hf-threads", str(value))
    if len(numbers) != 1:
        raise OptionError(f"--hf-threads: {value!r} is not one positive integer")
    return numbers[0]


def _models_file(model_set: str, value: Any, rootdir: Path) -> Path | None:
    if model_set == "custom" and not value:
        raise OptionError("--hf-set custom needs --hf-models-file PATH (or the ini option hf_models_file)")
    return _relative_to(rootdir, str(value)) if value else None


def _pool_budget(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        return non_negative(value, "MiB")
    except OptionError as exc:
        raise OptionError(f"--hf-pool-memory-mb: {exc}") from None


def _int_option(option: str, value: Any, default: int, minimum: int) -> int:
    if value is None:
        return default
    if int(value) < minimum:
        raise OptionError(f"{option}: must be >= {minimum}, got {value}")
    return int(value)


def _relative_to(rootdir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else rootdir / path


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")
