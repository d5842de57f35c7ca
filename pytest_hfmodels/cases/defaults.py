"""Every default of the run settings, and the words options accept, as plain constants.

They are written here once. `settings` builds `Settings` from them; the option table (the plugin's
`options`, loaded into every pytest run the plugin is installed in) reads them for its choices and
help texts without importing `settings`, whose dataclasses it has no use for at that point.
"""

from __future__ import annotations

from pathlib import Path

from pytest_hfmodels.registry.vocabulary import SET_NAMES

#: --hf-set: the registries' sets, every entry, or the original tools' custom file
MODEL_SETS = (*SET_NAMES, "all", "custom")
# The input sweep every case is measured over unless the options narrow it: the batch sizes and
# text lengths serving usually sees, and a short and a longer utterance. Images come at the size
# the model's processor makes them.
DEFAULT_BATCH_SIZES = (1, 4, 8)
DEFAULT_SEQ_LENGTHS = (32, 128)
DEFAULT_AUDIO_SECONDS = (1, 5)
#: where repos put their own ONNX export, looked for in this order before converting (--hf-onnx-file)
DEFAULT_ONNX_FILES = ("onnx/model.onnx", "model.onnx")
#: what a case measures: one forward call, or greedy decoding of `new_tokens` tokens
SCENARIOS = ("forward", "generate")
#: tokens each generate case decodes (every runtime exactly this many: EOS is ignored)
DEFAULT_NEW_TOKENS = 32
#: where results go (relative to the rootdir, beside the ini file); how long a locked database is awaited
DEFAULT_DB_PATH = Path(".hfmodels") / "results.duckdb"
DEFAULT_LOCK_TIMEOUT_S = 30.0
# How a case is timed (MeasureConfig)
DEFAULT_WARMUP = 3  #: untimed calls before the rounds
DEFAULT_MIN_ROUNDS = 10
DEFAULT_MIN_TIME_S = 0.1  #: rounds go on until this much time was measured too
DEFAULT_MAX_ROUNDS = 10_000
